"""ONNX models read as protobuf data: the network's nodes in order and its weights as numpy, never run.

`read_graph(path, ops)` parses a .onnx file with the onnx package (no onnxruntime). Its initializers
and Constant nodes are constants, and the nodes that only transform constants (the weight side of a
quantised model: DequantizeLinear, Reshape) are computed by onnx's reference implementation, which is
ONNX's definition of them, so what is left is the network: the nodes that the data flows through, for the
caller to map onto PyTorch. Every op must be one folded here or one of `ops`; any other is named in the
error.
"""

from __future__ import annotations

import os
from collections.abc import Collection
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


# Ops computed by onnx's reference implementation (onnx.reference) when every input is a constant.
FOLDED = ("Constant", "DequantizeLinear", "Reshape")


def _fold(proto, constants: dict[str, np.ndarray], opsets: dict[str, int], path) -> list[np.ndarray]:
    """The outputs of a node (NodeProto) reading only `constants`, computed by onnx's reference evaluator."""
    from onnx import helper  # noqa: PLC0415
    from onnx.reference import ReferenceEvaluator  # noqa: PLC0415

    inputs = [name for name in proto.input if name]
    graph = helper.make_graph(
        [proto],
        proto.name or proto.op_type,
        [helper.make_empty_tensor_value_info(name) for name in inputs],
        [helper.make_empty_tensor_value_info(name) for name in proto.output],
    )
    try:
        return ReferenceEvaluator(graph, opsets=opsets).run(None, {name: constants[name] for name in inputs})
    except Exception as exc:  # the reference ops raise whatever numpy or their own checks raise
        raise ValueError(
            f"{path}: {proto.op_type} node {proto.name!r} cannot be computed on its constant inputs "
            f"{inputs} ({type(exc).__name__}: {exc}): the file is damaged or breaks the ONNX spec"
        ) from exc


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
    opsets = {opset.domain: opset.version for opset in model.opset_import}
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    network, unsupported = [], {}
    for proto in model.graph.node:
        if proto.op_type in FOLDED and all(name in constants for name in proto.input if name):
            constants.update(zip(proto.output, _fold(proto, constants, opsets, path), strict=True))
        elif proto.op_type in ops:
            attributes = {
                a.name: (numpy_helper.to_array(a.t) if a.HasField("t") else helper.get_attribute_value(a))
                for a in proto.attribute
            }
            network.append(
                Node(proto.op_type, proto.name, tuple(proto.input), tuple(proto.output), attributes)
            )
        else:
            unsupported.setdefault(proto.op_type, proto.name)
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
