"""TensorFlow GraphDef files (.pb) read as data, without TensorFlow: nodes, inputs, attributes, constants.

The protobuf messages are decoded by tensorboard's compiled copies of TensorFlow's protos (graph_pb2) and
constants become numpy arrays by its `make_ndarray`; this module only turns each node's attributes into
plain Python values. Nothing in the file is run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import graph_pb2, types_pb2
from tensorboard.util import tensor_util

# The DataTypes a network's constants and attributes use here; others (strings, resources) are refused.
NUMERIC = {types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_INT64, types_pb2.DT_BOOL}
# AttrValue.ListValue's fields, in the order a list attribute is read.
LIST_FIELDS = ("s", "i", "f", "b", "type")


@dataclass
class Node:
    """One operation: name, op type, input names ('^name' for control inputs), attributes."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


class GraphDefError(ValueError):
    """A file that is not a TensorFlow GraphDef this reader can decode."""


def tensor(proto) -> np.ndarray:
    """A TensorProto as a numpy array (its own copy)."""
    if proto.dtype not in NUMERIC:
        known = ", ".join(types_pb2.DataType.Name(t) for t in sorted(NUMERIC))
        raise GraphDefError(
            f"tensor data type {proto.dtype} ({types_pb2.DataType.Name(proto.dtype)}) is not one of {known}"
        )
    return tensor_util.make_ndarray(proto)


def _attr(value) -> Any:
    """An AttrValue: bytes, int, float, bool, data type, shape [dims], tensor, or a list of scalars."""
    kind = value.WhichOneof("value")
    if kind == "list":
        return [item for name in LIST_FIELDS for item in getattr(value.list, name)]
    if kind == "shape":
        return [dim.size for dim in value.shape.dim]
    if kind == "tensor":
        return tensor(value.tensor)
    return None if kind in (None, "func", "placeholder") else getattr(value, kind)


def read_graph(path: str | os.PathLike) -> dict[str, Node]:
    """The nodes of a GraphDef file by name, in the file's order."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        graph = graph_pb2.GraphDef.FromString(data)
        nodes = [
            Node(node.name, node.op, list(node.input), {k: _attr(v) for k, v in node.attr.items()})
            for node in graph.node
        ]
    except (DecodeError, GraphDefError) as exc:
        raise GraphDefError(f"{path} is not a TensorFlow GraphDef this reader decodes: {exc}") from exc
    if not nodes or not all(node.name and node.op for node in nodes):
        raise GraphDefError(f"{path} holds no TensorFlow graph nodes (a GraphDef .pb file is expected)")
    return {node.name: node for node in nodes}


def constants(nodes: dict[str, Node]) -> dict[str, np.ndarray]:
    """The value of each Const node, by name."""
    return {name: node.attrs["value"] for name, node in nodes.items() if node.op == "Const"}
