"""The GraphDef reader on graphs written here with a minimal protobuf encoder (an oracle independent of
the protobuf library the reader decodes with), and on broken files."""

import struct

import numpy as np
import pytest

from stylevid.metrics import graphdef
from stylevid.metrics.graphdef import GraphDefError


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers as their 64-bit two's complement, as protobuf writes them
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def number(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def message(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def fixed32(field: int, value: float) -> bytes:
    return varint(field << 3 | 5) + struct.pack("<f", value)


def shape(*dims: int) -> bytes:
    return b"".join(message(2, number(1, d)) for d in dims)


def node(name: str, op: str, inputs=(), **attrs: bytes) -> bytes:
    out = message(1, name.encode()) + message(2, op.encode())
    out += b"".join(message(3, i.encode()) for i in inputs)
    for key, value in attrs.items():
        out += message(5, message(1, key.encode()) + message(2, value))
    return message(1, out)


WEIGHTS = np.arange(6, dtype=np.float32).reshape(1, 2, 3) - 2.5
GRAPH = b"".join(
    [
        # A float tensor in tensor_content; int32s packed, negative included; one float filling a shape.
        node(
            "w",
            "Const",
            value=message(8, number(1, 1) + message(2, shape(1, 2, 3)) + message(4, WEIGHTS.tobytes())),
        ),
        node(
            "shape",
            "Const",
            value=message(8, number(1, 3) + message(2, shape(2)) + message(7, varint(1) + varint(-1))),
        ),
        node("half", "Const", value=message(8, number(1, 1) + message(2, shape(2, 2)) + fixed32(5, 0.5))),
        node("x", "Placeholder", dtype=number(6, 1), shape=message(7, shape(1, 4, 4, 3))),
        node(
            "conv",
            "Conv2D",
            ["x:0", "w", "^shape"],
            strides=message(1, message(3, varint(1) + varint(2) + varint(2) + varint(1))),
            padding=message(2, b"SAME"),
            epsilon=fixed32(4, 1e-3),
            keep_dims=number(5, 1),
            dilation=number(3, -7),
        ),
    ]
)


def test_nodes_inputs_attributes_and_constants_are_decoded(tmp_path):
    path = tmp_path / "graph.pb"
    path.write_bytes(GRAPH)
    nodes = graphdef.read_graph(path)
    assert list(nodes) == ["w", "shape", "half", "x", "conv"]
    conv = nodes["conv"]
    assert conv.op == "Conv2D" and conv.inputs == ["x:0", "w", "^shape"]
    assert conv.attrs["strides"] == [1, 2, 2, 1] and conv.attrs["padding"] == b"SAME"
    assert conv.attrs["epsilon"] == pytest.approx(1e-3) and conv.attrs["keep_dims"] is True
    assert conv.attrs["dilation"] == -7
    assert nodes["x"].attrs == {"dtype": 1, "shape": [1, 4, 4, 3]}
    values = graphdef.constants(nodes)
    assert values.keys() == {"w", "shape", "half"}
    np.testing.assert_array_equal(values["w"], WEIGHTS)
    assert values["shape"].dtype == np.int32 and values["shape"].tolist() == [1, -1]
    assert values["half"].dtype == np.float32 and values["half"].tolist() == [[0.5, 0.5], [0.5, 0.5]]


@pytest.mark.parametrize(
    "content, match",
    [
        (GRAPH[:-3], "not a TensorFlow GraphDef"),
        (b"\x0f" * 8, "not a TensorFlow GraphDef"),
        (b"", "no TensorFlow graph nodes"),
        (
            node("t", "Const", value=message(8, number(1, 7) + message(2, shape(1)))),
            r"data type 7 \(DT_STRING\)",
        ),
    ],
)
def test_files_that_are_not_graphs_are_refused_with_the_file_named(tmp_path, content, match):
    path = tmp_path / "broken.pb"
    path.write_bytes(content)
    with pytest.raises(GraphDefError, match=match) as error:
        graphdef.read_graph(path)
    assert "broken.pb" in str(error.value)
