"""ONNX models read as protobuf data: the network's nodes in order and its weights as numpy; nothing runs.

`read_graph(path, ops)` parses a .onnx file with the onnx package (protobuf only, no runtime). Its
initializers and Constant nodes are constants, and the nodes that only transform constants (the
weight side of a quantised model: DequantizeLinear, Reshape) are computed here in numpy, as ONNX
defines them, so what is left is the network: the nodes that the data flows through, for the caller
to map onto PyTorch. Every op must be one folded here or one of `ops`; any other is named in the error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Node:
    """One node of the network: its op, the names it reads and writes, and its attributes."""

    op: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Graph:
    """The network's nodes in graph order, the constants they read (by name), and its data input."""

    nodes: tuple[Node, ...]
    constants: dict[str, np.ndarray]
    input: str
    outputs: tuple[str, ...]


def _constant(node: Node) -> np.ndarray:
    for key, value in node.attributes.items():
        if key == "value":
            return value
        if key in ("value_float", "value_floats", "value_int", "value_ints"):
            return np.asarray(value, np.float32 if "float" in key else np.int64)
    raise ValueError(f"Constant node {node.name!r} holds {sorted(node.attributes)}: only tensors and numbers")


def _dequantize(node: Node, x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None = None) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21): (x - zero) * scale, per tensor, per axis or per block of an axis."""
    axis, block = node.attributes.get("axis", 1) % max(x.ndim, 1), node.attributes.get("block_size", 0)
    zero = np.zeros_like(scale, dtype=x.dtype) if zero is None else zero
    if block:
        if scale.ndim != x.ndim or scale.shape[axis] != -(-x.shape[axis] // block):
            raise ValueError(
                f"DequantizeLinear {node.name!r}: scales {list(scale.shape)} do not block {list(x.shape)}"
                f" by {block} along axis {axis}"
            )
        scale, zero = (np.repeat(v, block, axis).take(range(x.shape[axis]), axis) for v in (scale, zero))
    elif scale.ndim == 1:
        shape = [-1 if i == axis else 1 for i in range(x.ndim)]
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    # As onnxruntime computes it: the integer difference, then one float32 product.
    return (x.astype(np.int32) - zero.astype(np.int32)).astype(scale.dtype) * scale


def _reshape(node: Node, x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    if node.attributes.get("allowzero", 0):
        return x.reshape(shape)
    return x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(shape.tolist())])


# Ops computed here when every input is a constant: node, input arrays -> output array.
FOLDED: dict[str, Callable[..., np.ndarray]] = {
    "Constant": _constant,
    "DequantizeLinear": _dequantize,
    "Reshape": _reshape,
}


def read_model(path: str | os.PathLike):
    """The onnx ModelProto of a .onnx file; a missing or unreadable file raises, naming it."""
    # Imported here: only the networks read from ONNX files need the onnx package.
    import onnx  # noqa: PLC0415
    from google.protobuf.message import DecodeError  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file: give the .onnx model")
    try:
        model = onnx.load(path, load_external_data=False)
    except (DecodeError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable ONNX model ({exc}): the file is damaged") from exc
    if not model.graph.node:
        raise ValueError(f"{path} holds no ONNX graph (no nodes): the file is damaged or not a model")
    return model


def read_graph(path: str | os.PathLike, ops: Collection[str]) -> Graph:
    """The network of a .onnx file: nodes of `ops` in order, with the constants folded (module doc)."""
    from onnx import helper, numpy_helper  # noqa: PLC0415

    model = read_model(path)
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    network, unsupported = [], {}
    for proto in model.graph.node:
        attributes = {
            a.name: (numpy_helper.to_array(a.t) if a.HasField("t") else helper.get_attribute_value(a))
            for a in proto.attribute
        }
        node = Node(proto.op_type, proto.name, tuple(proto.input), tuple(proto.output), attributes)
        if node.op in FOLDED and all(name in constants for name in node.inputs if name):
            constants[node.outputs[0]] = FOLDED[node.op](node, *(constants[n] for n in node.inputs if n))
        elif node.op in ops:
            network.append(node)
        else:
            unsupported.setdefault(node.op, node.name)
    if unsupported:
        found = ", ".join(f"{op} (node {name!r})" for op, name in sorted(unsupported.items()))
        raise ValueError(
            f"{path} uses ops this reader does not map onto PyTorch: {found}. Supported: "
            f"{', '.join(sorted(ops))}, and on constants {', '.join(FOLDED)}; give a model built of them"
        )
    read = {name for node in network for name in node.inputs}
    inputs = [i.name for i in model.graph.input if i.name not in constants and i.name in read]
    if len(inputs) != 1:
        raise ValueError(f"{path}: the network reads {len(inputs)} inputs ({inputs}); one was expected")
    return Graph(tuple(network), constants, inputs[0], tuple(o.name for o in model.graph.output))
