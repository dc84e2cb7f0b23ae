"""bias_act: every activation against its closed form; gradients; the kernel emulation."""

import math

import numpy as np
import pytest
import torch

from stylevid.custom_ops import ACTIVATIONS, bias_act
from stylevid.custom_ops.bias_act import bias_act_plugin, bias_act_ref


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


SELU_SCALE, SELU_ALPHA = 1.0507009873554805, 1.6732632423543772

# Closed forms in numpy, written from the textbook definitions, with the default (alpha, gain).
CLOSED_FORMS = {
    "linear": (lambda z, a: z, 0.0, 1.0),
    "relu": (lambda z, a: np.maximum(z, 0), 0.0, math.sqrt(2)),
    "lrelu": (lambda z, a: np.where(z > 0, z, a * z), 0.2, math.sqrt(2)),
    "tanh": (lambda z, a: np.tanh(z), 0.0, 1.0),
    "sigmoid": (lambda z, a: _sigmoid(z), 0.0, 1.0),
    "elu": (lambda z, a: np.where(z > 0, z, a * (np.exp(z) - 1)), 1.0, 1.0),
    "selu": (lambda z, a: SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * (np.exp(z) - 1)), 0.0, 1.0),
    "softplus": (lambda z, a: np.log1p(np.exp(z)), 0.0, 1.0),
    "swish": (lambda z, a: z * _sigmoid(z), 0.0, math.sqrt(2)),
}


def test_table_covers_every_closed_form():
    assert set(ACTIVATIONS) == set(CLOSED_FORMS)


@pytest.mark.parametrize("act", sorted(CLOSED_FORMS))
def test_activation_and_default_gain_match_closed_form(act):
    func, alpha, gain = CLOSED_FORMS[act]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4)) * 3
    b = rng.standard_normal(5)
    expect = func(x + b[None, :, None], alpha) * gain
    got = bias_act(torch.from_numpy(x), torch.from_numpy(b), act=act, impl="ref")
    np.testing.assert_allclose(got.numpy(), expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", ["lrelu", "elu"])
def test_alpha_is_used(act):
    func = CLOSED_FORMS[act][0]
    x = np.linspace(-3, 3, 13)
    got = bias_act(torch.from_numpy(x), dim=0, act=act, alpha=0.5, gain=1, impl="ref")
    np.testing.assert_allclose(got.numpy(), func(x, 0.5), atol=1e-12)


def test_gain_and_clamp():
    x = np.linspace(-4, 4, 17)
    got = bias_act(torch.from_numpy(x), dim=0, act="lrelu", gain=2.0, clamp=1.5, impl="ref")
    np.testing.assert_allclose(got.numpy(), np.clip(np.where(x > 0, x, 0.2 * x) * 2, -1.5, 1.5), atol=1e-12)


@pytest.mark.parametrize(
    "shape,dim", [((2, 3, 4, 5), 1), ((2, 3, 4, 5), 3), ((2, 3, 4, 5), -2), ((6,), 0), ((4, 7), 1)]
)
def test_bias_broadcasts_along_dim(shape, dim):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    b = rng.standard_normal(shape[dim])
    view = [1] * len(shape)
    view[dim] = -1
    got = bias_act(torch.from_numpy(x), torch.from_numpy(b), dim=dim, impl="ref")
    np.testing.assert_allclose(got.numpy(), x + b.reshape(view), atol=1e-12)


def test_bad_arguments_name_the_value():
    x = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="act='gelu'"):
        bias_act(x, act="gelu", impl="ref")
    with pytest.raises(ValueError, match=r"bias of shape \[4\].*x.shape\[1\]=3"):
        bias_act(x, torch.zeros(4), impl="ref")
    with pytest.raises(ValueError, match="dim=5"):
        bias_act(x, dim=5, impl="ref")
    with pytest.raises(ValueError, match="clamp=-2"):
        bias_act(x, clamp=-2, impl="ref")
    with pytest.raises(ValueError, match="impl='fast'"):
        bias_act(x, impl="fast")


def _inputs(seed, shape=(2, 3, 4), dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype) * 2
    # Keep clear of the kinks at 0 so finite differences see one side of relu/lrelu/elu.
    x = torch.where(x.abs() < 0.05, x + 0.1, x)
    b = torch.randn(shape[1], generator=gen, dtype=dtype) * 0.01
    return x.requires_grad_(), b.requires_grad_()


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("clamp", [None, 1.0])
def test_ref_gradcheck(act, clamp):
    x, b = _inputs(5)
    fn = lambda x, b: bias_act_ref(x, b, act=act, clamp=clamp)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


# The kernel's own arithmetic (custom_ops/csrc/bias_act_core.h), run on the CPU.


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("clamp", [None, 0.8])
@pytest.mark.parametrize("with_bias", [True, False])
def test_emulated_kernel_value_and_two_gradients(emulator, act, clamp, with_bias):
    x, b = _inputs(7, shape=(2, 3, 5, 4))
    b = b if with_bias else None
    inputs = (x, b) if with_bias else (x,)
    outs = []
    for fn in (bias_act_ref, lambda *a, **k: bias_act_plugin(emulator, *a, **k)):
        y = fn(x, b, act=act, clamp=clamp)
        v = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
        grads = torch.autograd.grad((y * v).sum(), inputs, create_graph=True)
        energy = sum((g * g).sum() for g in grads)
        # A linear activation's gradient is constant: its second derivative is zero, not a graph.
        second = (
            torch.autograd.grad(energy, inputs, allow_unused=True)
            if energy.requires_grad
            else (None,) * len(inputs)
        )
        outs.append((y, grads, second))
    (y0, g0, s0), (y1, g1, s1) = outs
    torch.testing.assert_close(y1, y0, rtol=1e-12, atol=1e-12)
    for a, e in zip(g1 + s1, g0 + s0, strict=True):
        if e is None:
            assert a is None or a.abs().max() == 0
        else:
            torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("act", ["lrelu", "swish", "tanh"])
def test_emulated_kernel_gradcheck(emulator, act):
    x, b = _inputs(11)
    fn = lambda x, b: bias_act_plugin(emulator, x, b, act=act, clamp=1.5)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@pytest.mark.parametrize("dim", [1, 2, -1])
def test_emulated_kernel_layouts(emulator, dim):
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    b = torch.randn(x.shape[dim])
    got = bias_act_plugin(emulator, x, b, dim=dim, act="lrelu", clamp=2.0)
    torch.testing.assert_close(got, bias_act_ref(x, b, dim=dim, act="lrelu", clamp=2.0))
    assert got.stride() == x.stride()
    # A transposed (not dense in either standard layout) input is handled too.
    xt = torch.randn(5, 4, 3, 2).permute(3, 2, 1, 0)
    bt = torch.randn(3)
    got = bias_act_plugin(emulator, xt, bt, dim=1, act="relu")
    torch.testing.assert_close(got, bias_act_ref(xt, bt, dim=1, act="relu"))
