"""The metrics' networks with every tensor on a CUDA device, run on fake CUDA tensors (no GPU needed).

Under tests/device_standin.py's OffHostMode an op that combines tensors on two devices raises, even
a 0-dim CPU tensor in CUDA math, so these tests find device mix-ups on any machine. What reads
values on the host (MTCNN, numpy statistics) cannot run on fake tensors; those paths move their
inputs to the CPU first, and the tests below check the hand-over where there is one.
"""

import numpy as np
import pytest
import torch
from device_standin import DeviceMixError, OffHostMode, move_by_replacing
from facenet_pytorch import InceptionResnetV1
from torch._subclasses.fake_tensor import FakeTensorMode

from stylevid.metrics.face_embedders import FaceEmbedder
from stylevid.metrics.face_readout import BACKGROUND_GRID, background_features
from stylevid.metrics.i3d import CLASSES, I3D
from stylevid.metrics.leakage import ProbeReadout, rms_distance
from stylevid.metrics.lpips import LPIPSDistance
from stylevid.metrics.probes import OUTPUTS, FactorProbe

CUDA = torch.device("cuda", 0)


@pytest.fixture(autouse=True)
def fake_cuda():
    with FakeTensorMode(allow_non_fake_inputs=True), OffHostMode():
        yield


def test_the_mode_finds_a_mix_up():
    with pytest.raises(DeviceMixError, match="combines tensors on"):
        torch.empty(2, 3, device=CUDA) * torch.tensor(2.0)


def test_i3d_resizes_and_embeds_on_cuda():
    videos = torch.empty(2, 9, 3, 40, 48, dtype=torch.uint8, device=CUDA)  # resized to 224x224 inside
    logits = move_by_replacing(I3D(), CUDA)(videos)
    assert logits.device == CUDA and logits.shape == (2, CLASSES)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_on_cuda(net):
    x = torch.empty(3, 3, 64, 64, device=CUDA)
    distance = move_by_replacing(LPIPSDistance(net), CUDA)(x, x)
    assert distance.device == CUDA and distance.shape == (3,)


def test_face_embedder_resizes_and_embeds_on_cuda():
    network = InceptionResnetV1(pretrained=None, classify=False)
    embedder = move_by_replacing(FaceEmbedder(network, "random", {}), CUDA)
    embeddings = embedder(torch.empty(2, 3, 100, 100, device=CUDA))
    assert embeddings.device == CUDA and embeddings.shape == (2, 512)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_factor_probe_on_cuda_and_its_readout_hands_features_to_the_cpu(size):
    probe = move_by_replacing(FactorProbe(), CUDA)
    frames = torch.empty(5, 3, size, size, device=CUDA)
    values = probe.values(frames)
    assert {v.device for v in values.values()} == {CUDA}
    assert sum(v.shape[1] for v in values.values()) == OUTPUTS
    features = ProbeReadout(probe, batch=2)(frames)
    assert {f.device.type for f in features.values()} == {"cpu"}
    assert {len(f) for f in features.values()} == {5}


def test_readout_distances_and_background_features_of_cuda_frames():
    a, b = torch.empty(4, 6, device=CUDA), torch.empty(4, 6, device=CUDA)
    assert rms_distance(a, b).device == CUDA
    cells = background_features(torch.empty(3, 64, 64, device=CUDA), np.array([20.0, 16.0, 44.0, 48.0]))
    assert cells.device.type == "cpu" and cells.shape == (3 * BACKGROUND_GRID**2,)
