"""StyleGAN2 building blocks with equalised learning rate: dense, conv, modulated conv, minibatch std."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from stylevid.custom_ops import ACTIVATIONS, bias_act, conv2d_resample, setup_filter, upsample2d
from stylevid.shapes import assert_shape

RESAMPLE_FILTER = (1, 3, 3, 1)


def normalize_2nd_moment(x: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """Scale x so its mean square along `dim` is 1."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def full_precision(device: torch.device | str):
    """A context in which autocast is off on `device` (a no-op where the device has no autocast)."""
    kind = torch.device(device).type
    if torch.amp.is_autocast_available(kind):
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


class FullyConnected(nn.Module):
    """Dense layer, weights scaled at run time (equalised learning rate); x [..., in] -> [..., out]."""

    def __init__(self, in_features, out_features, activation="linear", lr_multiplier=1.0, bias_init=0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        y = x.reshape(-1, x.shape[-1]) @ w.t()
        # Under autocast the product may come out in bfloat16: the bias takes the product's dtype,
        # as the compiled bias_act needs one dtype for both.
        y = bias_act(y, self.bias.to(y.dtype) * self.bias_gain, act=self.activation)
        return y.reshape(*x.shape[:-1], y.shape[-1])


class Conv2dLayer(nn.Module):
    """Conv with optional FIR up/down resampling, bias and activation; [N, in, H, W] -> [N, out, H', W']."""

    def __init__(
        self, in_channels, out_channels, kernel_size, activation="lrelu", up=1, down=1, conv_clamp=None
    ):
        super().__init__()
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w.to(x.dtype), self.resample_filter, self.up, self.down, self.padding)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        act_gain = bias_act_gain(self.activation) * gain
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=clamp)


def bias_act_gain(activation: str) -> float:
    """The default gain of an activation (see custom_ops.bias_act.ACTIVATIONS)."""
    return ACTIVATIONS[activation].def_gain


class ModulatedConv2d(nn.Module):
    """StyleGAN2's style-modulated conv: x [B, in, H, W], styles [B, in] -> [B, out, H*up, W*up].

    Computed as scale-inputs, shared conv, scale-outputs, which equals a per-sample grouped conv
    with modulated and demodulated weights and lets the whole batch share one convolution.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        w_dim,
        up=1,
        demodulate=True,
        activation="lrelu",
        conv_clamp=None,
    ):
        super().__init__()
        self.up, self.demodulate, self.activation, self.conv_clamp = up, demodulate, activation, conv_clamp
        self.in_channels, self.padding = in_channels, kernel_size // 2
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER), persistent=False)
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, self.in_channels, None, None], "modulated conv input")
        # Styles and the demodulation in float32 under mixed precision: the demodulation sums
        # in*k*k squared products, and bfloat16's 8-bit mantissa would scale each output channel
        # off by up to ~1%; the affine is a tiny matrix, so full precision costs nothing.
        with full_precision(w.device):
            styles = self.affine(w.float())  # [B, in]
        weight = self.weight * self.weight_gain
        if not self.demodulate:
            styles = styles * self.weight_gain
            weight = self.weight
        x = x * styles.to(x.dtype)[:, :, None, None]
        x = conv2d_resample(x, weight.to(x.dtype), self.resample_filter, up=self.up, padding=self.padding)
        if self.demodulate:
            # 1 / norm of each sample's modulated kernel, per output channel
            d = (weight.square().sum(dim=[2, 3])[None] * styles.square()[:, None, :]).sum(dim=2)
            x = x * (d + 1e-8).rsqrt().to(x.dtype)[:, :, None, None]
        gain = bias_act_gain(self.activation)
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=gain, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of a synthesis branch: (const or upsample) -> two modulated convs -> toRGB skip."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, image_channels, conv_clamp=None):
        super().__init__()
        self.resolution, self.first = resolution, in_channels == 0
        if self.first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=2, conv_clamp=conv_clamp)
        self.conv1 = ModulatedConv2d(out_channels, out_channels, 3, w_dim, conv_clamp=conv_clamp)
        self.to_image = ModulatedConv2d(
            out_channels,
            image_channels,
            1,
            w_dim,
            demodulate=False,
            activation="linear",
            conv_clamp=conv_clamp,
        )
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_FILTER), persistent=False)

    def forward(self, x, image, w):
        if self.first:
            x = self.const.to(w.dtype)[None].expand(w.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, w)
        x = self.conv1(x, w)
        # The image skip sums every resolution's contribution: kept in float32 (StyleGAN2 does too),
        # so that the fine layers' small corrections are not rounded away by bfloat16.
        y = self.to_image(x, w).float()
        image = y if image is None else upsample2d(image, self.resample_filter) + y
        return x, image


class SynthesisNetwork(nn.Module):
    """Styled convs from 4² to the output resolution: w [B, w_dim] -> image [B, image_channels, R, R]."""

    def __init__(self, w_dim, resolution, channels, image_channels, conv_clamp=None):
        super().__init__()
        self.w_dim, self.image_channels = w_dim, image_channels
        resolutions = [2**i for i in range(2, int(math.log2(resolution)) + 1)]
        blocks, previous = [], 0
        for res in resolutions:
            blocks.append(SynthesisBlock(previous, channels(res), w_dim, res, image_channels, conv_clamp))
            previous = channels(res)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        assert_shape(w, [None, self.w_dim], "synthesis styles")
        x = image = None
        for block in self.blocks:
            x, image = block(x, image, w)
        return image


class MinibatchStd(nn.Module):
    """Appends the feature std over groups of samples: [..., N, C, H, W] -> [..., N, C + channels, H, W].

    Groups are taken along N only: leading dims (e.g. the frame index) hold separate batches.
    """

    def __init__(self, group_size: int, channels: int = 1):
        super().__init__()
        self.group_size, self.channels = group_size, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *lead, n, c, h, w = x.shape
        g = min(self.group_size, n) if n % min(self.group_size, n) == 0 else 1
        f = self.channels
        # Groups of consecutive samples: a batch split across processes keeps the same groups.
        y = x.reshape(*lead, n // g, g, f, c // f, h, w)
        y = (y - y.mean(dim=-5, keepdim=True)).square().mean(dim=-5)
        y = (y + 1e-8).sqrt().mean(dim=[-3, -2, -1])  # [..., N/g, f]
        y = y.repeat_interleave(g, dim=-2)[..., None, None].expand(*lead, n, f, h, w)
        return torch.cat([x, y], dim=-3)
