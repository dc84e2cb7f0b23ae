"""Fused bias + activation + gain + clamp, with a PyTorch reference and a CUDA kernel behind one call."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import torch
import torch.nn.functional as F

from . import dispatch


@dataclass(frozen=True)
class Activation:
    """One activation: its reference function, default alpha and gain, and its kernel code."""

    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float
    code: int
    has_2nd_grad: bool


def _elu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0)))


# The default gains keep the output's second moment near the input's for unit-variance
# inputs (He et al.), which is what StyleGAN2's equalised learning rate relies on.
ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0, 0, False),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2), 1, False),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), 2, False),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0, 3, True),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0, 4, True),
    "elu": Activation(_elu, 1.0, 1.0, 5, True),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0, 6, True),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0, 7, True),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2), 8, True),
}


def _resolve(act: str, alpha: float | None, gain: float | None, clamp: float | None):
    if act not in ACTIVATIONS:
        raise ValueError(f"act={act!r} is not an activation; use one of {', '.join(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    alpha = spec.def_alpha if alpha is None else float(alpha)
    gain = spec.def_gain if gain is None else float(gain)
    clamp = -1.0 if clamp is None else float(clamp)
    if clamp != -1.0 and clamp < 0:
        raise ValueError(f"clamp={clamp} must be non-negative, or None for no clamping")
    return spec, alpha, gain, clamp


def _check_bias(x: torch.Tensor, b: torch.Tensor | None, dim: int) -> int:
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim={dim} is out of range for a tensor of shape {list(x.shape)}")
    dim %= x.ndim
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(
            f"bias of shape {list(b.shape)} does not match x.shape[{dim}]={x.shape[dim]} "
            f"(x is {list(x.shape)}); pass a 1-D bias with one value per entry along dim"
        )
    return dim


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """`clamp(act(x + b) * gain)`, with b ([x.shape[dim]]) broadcast along `dim`; same shape as x.

    alpha: the lrelu slope or the elu scale (defaults from ACTIVATIONS); gain: defaults to the
    activation's variance-preserving gain; clamp: None for none, else clip to [-clamp, clamp].
    impl: 'auto' | 'cuda' | 'ref' (default $STYLEVID_OPS or 'auto').
    """
    dim = _check_bias(x, b, dim)
    plugin = dispatch.plugin("bias_act", x, impl)
    if plugin is None:
        return bias_act_ref(x, b, dim, act, alpha, gain, clamp)
    return bias_act_plugin(plugin, x, b, dim, act, alpha, gain, clamp)


def bias_act_ref(x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None) -> torch.Tensor:
    """The specification: plain PyTorch ops, differentiable to any order, on any device."""
    dim = _check_bias(x, b, dim)
    spec, alpha, gain, clamp = _resolve(act, alpha, gain, clamp)
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def bias_act_plugin(plugin: ModuleType, x, b=None, dim=1, act="linear", alpha=None, gain=None, clamp=None):
    """bias_act through a compiled extension (the CUDA kernel, or its CPU emulation in tests)."""
    dim = _check_bias(x, b, dim)
    spec, alpha, gain, clamp = _resolve(act, alpha, gain, clamp)
    empty = x.new_empty([0])
    args = (dim, spec.code, alpha, gain, clamp)
    if b is None:
        b = empty
    elif b.dtype != x.dtype:
        raise TypeError(f"bias dtype {b.dtype} differs from x dtype {x.dtype}; cast one of them")
    # The kernel walks memory in order and needs dy laid out like x: settle on one of two layouts.
    x = x.contiguous(memory_format=_memory_format(x))
    return _BiasAct.apply(x, b.contiguous(), plugin, args)


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, plugin, args):
        ctx.plugin, ctx.args = plugin, args
        ctx.save_for_backward(x, b)
        return plugin.bias_act(x, b, x.new_empty([0]), 0, *args)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        dx = _BiasActGrad.apply(dy, x, b, ctx.plugin, ctx.args)
        return dx, _bias_grad(dx, b, ctx.args[0]), None, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * d/dx[act]; its own backward gives the second-order terms."""

    @staticmethod
    def forward(ctx, dy, x, b, plugin, args):
        ctx.plugin, ctx.args = plugin, args
        dy = dy.contiguous(memory_format=_memory_format(x))
        ctx.save_for_backward(dy, x, b)
        return plugin.bias_act(x, b, dy, 1, *args)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        dy, x, b = ctx.saved_tensors
        g = g.contiguous(memory_format=_memory_format(x))
        d_dy = ctx.plugin.bias_act(x, b, g, 1, *ctx.args)
        d_x = ctx.plugin.bias_act(x, b, g * dy, 2, *ctx.args)
        return d_dy, d_x, _bias_grad(d_x, b, ctx.args[0]), None, None


def _bias_grad(dx: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor | None:
    if b.numel() == 0:
        return None
    return dx.sum([i for i in range(dx.ndim) if i != dim])


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
