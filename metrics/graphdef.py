"""TensorFlow GraphDef files (.pb) read as data, without TensorFlow: nodes, inputs, attributes, constants.

A frozen graph is a protocol buffer; this reads the protobuf wire format directly and decodes only what
describes a feed-forward network: each node's name, op, inputs and attributes (strings, numbers, bools,
data types, lists of those, and tensors: constants become numpy arrays). Nothing in the file is run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# TensorFlow's DataType enum values this reader decodes, and their numpy types.
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_}
# TensorProto's repeated-value fields (short constants use them instead of tensor_content), by field
# number: how an element is written (a varint, or a little-endian numpy type).
VALUE_FIELDS = {5: "<f4", 6: "<f8", 7: "varint", 10: "varint", 11: "varint"}
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


@dataclass
class Node:
    """One operation: name, op type, input names ('^name' for control inputs), attributes."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


class GraphDefError(ValueError):
    """A file that is not a TensorFlow GraphDef this reader can decode."""


def _varint(data: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise GraphDefError("a number runs past the end of the data: the file is cut short")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _signed(value: int) -> int:
    """A varint's int64 value (negative numbers are written as their 64-bit two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def fields(data: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a protobuf message: ints for varints, memoryviews otherwise."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, i = _varint(data, i)
        elif wire in (_FIXED64, _FIXED32, _BYTES):
            size = 8 if wire == _FIXED64 else 4 if wire == _FIXED32 else None
            if size is None:
                size, i = _varint(data, i)
            value = data[i : i + size]
            i += size
            if len(value) != size:
                raise GraphDefError("a field runs past the end of the data: the file is cut short")
        else:
            raise GraphDefError(f"protobuf wire type {wire} (field {number}) is not one a GraphDef uses")
        yield number, wire, value


def _numbers(wire: int, value, kind: str) -> list:
    """The elements of a repeated numeric field: packed (bytes) or one element."""
    if kind != "varint":
        return np.frombuffer(value, kind).tolist()
    if wire == _VARINT:
        return [_signed(value)]
    out, i = [], 0
    while i < len(value):
        number, i = _varint(value, i)
        out.append(_signed(number))
    return out


def _shape(data: memoryview) -> list[int]:
    dims = []
    for number, _, dim in fields(data):
        if number == 2:
            dims.append(next((_signed(v) for n, _, v in fields(dim) if n == 1), 0))
    return dims


def tensor(data: memoryview) -> np.ndarray:
    """A TensorProto as a numpy array (its own copy)."""
    dtype, shape, content, values = None, [], None, []
    for number, wire, value in fields(data):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = _shape(value)
        elif number == 4:
            content = bytes(value)
        elif number in VALUE_FIELDS:
            values += _numbers(wire, value, VALUE_FIELDS[number])
    if dtype not in DTYPES:
        raise GraphDefError(f"tensor data type {dtype} is not one of {sorted(DTYPES)} (TensorFlow DataType)")
    count = int(np.prod(shape))
    if content is not None:
        array = np.frombuffer(content, DTYPES[dtype]).copy()
    else:
        # TensorFlow stores a constant whose elements all equal the last one given with that one only.
        array = np.array((values + values[-1:] * count)[:count] if values else [0] * count, DTYPES[dtype])
    if array.size != count:
        raise GraphDefError(f"a tensor of shape {shape} holds {array.size} values")
    return array.reshape(shape)


def _attr(data: memoryview) -> Any:
    """An AttrValue: bytes, int, float, bool, data type, shape, tensor, or a list of scalars."""
    for number, _, value in fields(data):
        if number == 1:
            items = []
            for kind, kind_wire, item in fields(value):
                if kind == 2:
                    items.append(bytes(item))
                elif kind in (3, 6):
                    items += _numbers(kind_wire, item, "varint")
                elif kind == 4:
                    items += _numbers(kind_wire, item, "<f4")
                elif kind == 5:
                    items += [bool(b) for b in _numbers(kind_wire, item, "varint")]
            return items
        if number == 2:
            return bytes(value)
        if number in (3, 6):
            return _signed(value)
        if number == 4:
            return float(np.frombuffer(value, "<f4")[0])
        if number == 5:
            return bool(value)
        if number == 7:
            return _shape(value)
        if number == 8:
            return tensor(value)
    return None


def _node(data: memoryview) -> Node:
    node = Node("", "")
    for number, _, value in fields(data):
        if number == 1:
            node.name = bytes(value).decode()
        elif number == 2:
            node.op = bytes(value).decode()
        elif number == 3:
            node.inputs.append(bytes(value).decode())
        elif number == 5:
            entry = dict((n, v) for n, _, v in fields(value))
            node.attrs[bytes(entry.get(1, b"")).decode()] = _attr(entry[2]) if 2 in entry else None
    return node


def read_graph(path: str | os.PathLike) -> dict[str, Node]:
    """The nodes of a GraphDef file by name, in the file's order."""
    with open(path, "rb") as file:
        data = memoryview(file.read())
    try:
        nodes = [_node(value) for number, wire, value in fields(data) if number == 1 and wire == _BYTES]
    except (GraphDefError, UnicodeDecodeError, IndexError, ValueError) as exc:
        raise GraphDefError(f"{path} is not a TensorFlow GraphDef this reader decodes: {exc}") from exc
    if not nodes or not all(node.name and node.op for node in nodes):
        raise GraphDefError(f"{path} holds no TensorFlow graph nodes (a GraphDef .pb file is expected)")
    return {node.name: node for node in nodes}


def constants(nodes: dict[str, Node]) -> dict[str, np.ndarray]:
    """The value of each Const node, by name."""
    return {name: node.attrs["value"] for name, node in nodes.items() if node.op == "Const"}
