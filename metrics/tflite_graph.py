"""TensorFlow Lite flatbuffers read as data and run as PyTorch: the float32 ops of small convolutional nets.

The flatbuffer is decoded with the `tflite` schema package (generated readers, nothing of TensorFlow);
each operator of the main subgraph maps onto a PyTorch function of OPS. Activations run as NCHW while
TFLite's are NHWC: the graph's 4-D inputs and outputs are NCHW here, kernels are permuted where they are
used, and constant operands of elementwise ops are stored permuted to broadcast as they do in NHWC.
Padding follows TFLite: SAME pads (out - 1) * stride + extent - in in total, the extra pixel after;
max pooling never takes a padded value. A file holding any other op or tensor type raises TFLiteError.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tflite
import torch
import torch.nn.functional as F
from tflite.utils import opcode2name
from torch import nn

from stylevid.metrics.i3d import same_padding  # TensorFlow's SAME rule, which TFLite shares

# TFLite's fused activations (tflite.ActivationFunctionType) by enum value.
ACTIVATIONS: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {
    0: lambda x: x,
    1: F.relu,
    2: lambda x: x.clamp(-1, 1),
    3: F.relu6,
    4: torch.tanh,
}
DTYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.INT32: np.int32}


class TFLiteError(ValueError):
    """A file that is not a TFLite model, or one holding an op or tensor type this reader does not map."""


def _pad_window(x: torch.Tensor, options: dict, kernel: tuple[int, int], value: float = 0.0) -> torch.Tensor:
    """x [N, C, H, W] padded for a window of `kernel` (dilated per options) as options' padding says."""
    if options["padding"] == tflite.Padding.VALID:
        return x
    dilation = options.get("dilation", (1, 1))
    (top, bottom), (left, right) = (
        same_padding(x.shape[axis], (k - 1) * d + 1, s)
        for axis, k, d, s in zip((2, 3), kernel, dilation, options["stride"], strict=True)
    )
    return F.pad(x, (left, right, top, bottom), value=value)


def conv_2d(inputs: list[torch.Tensor], options: dict) -> torch.Tensor:
    """CONV_2D: x [N, C, H, W], kernel [O, KH, KW, C] (TFLite's layout), bias [O] or None."""
    x, kernel, bias = inputs
    x = _pad_window(x, options, kernel.shape[1:3])
    y = F.conv2d(x, kernel.permute(0, 3, 1, 2), bias, options["stride"], dilation=options["dilation"])
    return ACTIVATIONS[options["activation"]](y)


def depthwise_conv_2d(inputs: list[torch.Tensor], options: dict) -> torch.Tensor:
    """DEPTHWISE_CONV_2D: x [N, C, H, W], kernel [1, KH, KW, C * multiplier], bias [C * multiplier]."""
    x, kernel, bias = inputs
    x = _pad_window(x, options, kernel.shape[1:3])
    weight = kernel.permute(3, 0, 1, 2)  # output channel c * multiplier + m reads input channel c
    y = F.conv2d(x, weight, bias, options["stride"], dilation=options["dilation"], groups=x.shape[1])
    return ACTIVATIONS[options["activation"]](y)


def max_pool_2d(inputs: list[torch.Tensor], options: dict) -> torch.Tensor:
    """MAX_POOL_2D of x [N, C, H, W]; padded pixels are -inf, so never the maximum."""
    (x,) = inputs
    kernel = options["filter"]
    y = F.max_pool2d(_pad_window(x, options, kernel, -torch.inf), kernel, options["stride"])
    return ACTIVATIONS[options["activation"]](y)


def prelu(inputs: list[torch.Tensor], options: dict) -> torch.Tensor:
    """PRELU: x where positive, alpha * x elsewhere; alpha broadcast as stored (see the module doc)."""
    x, alpha = inputs
    return torch.where(x >= 0, x, alpha * x)


def add(inputs: list[torch.Tensor], options: dict) -> torch.Tensor:
    """ADD of two broadcastable tensors, then the fused activation."""
    a, b = inputs
    return ACTIVATIONS[options["activation"]](a + b)


def pad(inputs: list[torch.Tensor], options: dict) -> torch.Tensor:
    """PAD of x [N, C, H, W] with zeros by paddings int32 [4, 2] ((before, after) per NHWC axis)."""
    x, paddings = inputs
    (n, h, w, c) = paddings.tolist()
    return F.pad(x, (*w, *h, *c, *n))


@dataclass(frozen=True)
class OpSpec:
    """How one TFLite op runs: its function, its options table and the fields read from it."""

    run: Callable[[list[torch.Tensor], dict], torch.Tensor]
    options: type | None = None
    fields: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (our name, the table's accessors)
    elementwise: bool = False  # constant operands broadcast against NHWC activations


_ACT = ("activation", ("FusedActivationFunction",))
_WINDOW = (("padding", ("Padding",)), ("stride", ("StrideH", "StrideW")), _ACT)
_CONV = (*_WINDOW, ("dilation", ("DilationHFactor", "DilationWFactor")))
OPS: dict[str, OpSpec] = {
    "CONV_2D": OpSpec(conv_2d, tflite.Conv2DOptions, _CONV),
    "DEPTHWISE_CONV_2D": OpSpec(depthwise_conv_2d, tflite.DepthwiseConv2DOptions, _CONV),
    "MAX_POOL_2D": OpSpec(
        max_pool_2d, tflite.Pool2DOptions, (*_WINDOW, ("filter", ("FilterHeight", "FilterWidth")))
    ),
    "PRELU": OpSpec(prelu, elementwise=True),
    "ADD": OpSpec(add, tflite.AddOptions, (_ACT,), elementwise=True),
    "PAD": OpSpec(pad),
}


@dataclass(frozen=True)
class Operator:
    """One op of the graph: its kind, tensor indices (-1: an absent optional input) and options."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict


@dataclass(frozen=True)
class Graph:
    """The main subgraph of a TFLite file: ops in execution order, constants as stored, names by tensor."""

    operators: list[Operator]
    constants: dict[int, np.ndarray]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    names: dict[int, str]


def _options(op, spec: OpSpec) -> dict:
    if spec.options is None:
        return {}
    table = spec.options()
    raw = op.BuiltinOptions()
    table.Init(raw.Bytes, raw.Pos)
    values = {name: tuple(getattr(table, a)() for a in accessors) for name, accessors in spec.fields}
    return {name: value[0] if len(value) == 1 else value for name, value in values.items()}


def read_graph(path: str | os.PathLike) -> Graph:
    """The main subgraph of the TFLite flatbuffer at `path`, every op checked against OPS."""
    data = Path(path).read_bytes()
    if not tflite.Model.ModelBufferHasIdentifier(data, 0):
        raise TFLiteError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier): give a .tflite model")
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    names, constants = {}, {}
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        names[i] = tensor.Name().decode()
        raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(raw, np.ndarray) and raw.size:
            if tensor.Type() not in DTYPES:
                raise TFLiteError(
                    f"constant {names[i]!r} of {path} has TFLite tensor type {tensor.Type()}; this reader"
                    f" maps {sorted(DTYPES)} (float32, int32) only: convert the model to float32"
                )
            constants[i] = raw.view(DTYPES[tensor.Type()]).reshape(tensor.ShapeAsNumpy()).copy()
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = codes[op.OpcodeIndex()]
        kind = opcode2name(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()))
        if kind not in OPS:
            raise TFLiteError(
                f"op {i} of {path} ({names[op.Outputs(0)]!r}) is {kind}, which stylevid.metrics.tflite_graph"
                f" does not map to PyTorch; it maps {sorted(OPS)}: add the op to OPS"
            )
        outputs = tuple(op.OutputsAsNumpy().tolist())
        operators.append(Operator(kind, tuple(op.InputsAsNumpy().tolist()), outputs, _options(op, OPS[kind])))
    inputs = tuple(graph.InputsAsNumpy().tolist())
    return Graph(operators, constants, inputs, tuple(graph.OutputsAsNumpy().tolist()), names)


def nchw(value: np.ndarray) -> np.ndarray:
    """A constant that broadcasts against NHWC activations, as one that broadcasts the same against NCHW."""
    return value.reshape((1,) * (4 - value.ndim) + value.shape).transpose(0, 3, 1, 2)


class TFLiteNet(nn.Module):
    """A TFLite graph as a module: NCHW float inputs -> the graph's outputs (4-D ones NCHW), in order."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        elementwise = {i for op in graph.operators if OPS[op.kind].elementwise for i in op.inputs}
        for index, value in graph.constants.items():
            stored = nchw(value) if index in elementwise and value.ndim <= 4 else value
            self.register_buffer(f"constant{index}", torch.from_numpy(np.ascontiguousarray(stored)))

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values: dict[int, torch.Tensor | None] = {-1: None}
        values.update(zip(self.graph.inputs, inputs, strict=True))
        for op in self.graph.operators:
            operands = [values[i] if i in values else getattr(self, f"constant{i}") for i in op.inputs]
            values[op.outputs[0]] = OPS[op.kind].run(operands, op.options)
        return tuple(values[i] for i in self.graph.outputs)
