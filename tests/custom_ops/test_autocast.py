"""The compiled ops' path under bfloat16 autocast, as a GPU runs it, here through the CPU emulation.

On a GPU the layers call the CUDA kernels inside `torch.autocast(dtype=torch.bfloat16)`: the
convolutions and products come out in bfloat16 and the kernels must take them (the first GPU
training step once failed there, on a float32 bias beside a bfloat16 activation, while the CPU
tests ran the reference ops, which promote silently). Here the same layers run with
STYLEVID_OPS=emulate under the CPU's bfloat16 autocast, so the kernels' element code sees the
dtypes a GPU step gives it. The oracle is the reference ops in float32, and the bar is bfloat16's
own: the emulated kernels may not be further from float32 than the reference ops under the same
autocast are, by more than a small factor.
"""

import pytest
import torch

from stylevid.custom_ops import dispatch
from stylevid.custom_ops.bias_act import bias_act, bias_act_ref
from stylevid.custom_ops.upfirdn2d import setup_filter, upfirdn2d, upfirdn2d_ref
from stylevid.networks.layers import Conv2dLayer, FullyConnected, ModulatedConv2d


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def _run(layer, inputs, *, autocast: bool, order: int):
    """Output and parameter gradients of `layer(*inputs)`; order 2 is R1's (gradient of a gradient norm)."""
    layer.zero_grad(set_to_none=True)
    x = inputs[0].detach().clone().requires_grad_(order == 2)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        y = layer(x, *inputs[1:])
        weights = torch.linspace(-1, 1, y.numel()).reshape(y.shape)
        loss = (y.float() * weights).sum()
        if order == 2:
            (grad,) = torch.autograd.grad(loss, x, create_graph=True)
            loss = grad.float().square().sum()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters() if p.grad is not None}
    return y.detach(), grads


def _layers():
    torch.manual_seed(0)
    w = torch.randn(4, 32)
    return {
        # The affine of every modulated conv: the product is bfloat16 under autocast, the bias float32.
        "affine": (FullyConnected(32, 24, bias_init=1.0), (torch.randn(4, 32),)),
        "mapping layer": (FullyConnected(32, 32, activation="lrelu"), (torch.randn(4, 32),)),
        # D's downsampling conv: upfirdn2d before a strided conv, bias_act after.
        "D conv down": (Conv2dLayer(8, 16, 3, down=2), (torch.randn(4, 8, 16, 16),)),
        "D conv 1x1": (Conv2dLayer(3, 8, 1), (torch.randn(4, 3, 16, 16),)),
        # G's upsampling modulated conv: transposed conv then upfirdn2d, styles and demodulation.
        "G conv up": (ModulatedConv2d(8, 16, 3, 32, up=2), (torch.randn(4, 8, 8, 8), w)),
        "G conv": (ModulatedConv2d(8, 8, 3, 32), (torch.randn(4, 8, 8, 8), w)),
    }


@pytest.mark.parametrize("order", [1, 2], ids=["backward", "R1 double backward"])
@pytest.mark.parametrize("name", list(_layers()))
def test_layers_run_the_kernels_under_bfloat16_autocast(emulated_ops, monkeypatch, name, order):
    layer, inputs = _layers()[name]
    emulated = _run(layer, inputs, autocast=True, order=order)
    assert emulated_ops["bias_act"] > 0, "the layer did not reach the compiled bias_act"
    if name.endswith(("up", "down")):  # a conv without resampling is a plain F.conv2d
        assert emulated_ops["upfirdn2d"] > 0, "the layer did not reach the compiled upfirdn2d"
    monkeypatch.setenv(dispatch.ENV_VAR, "ref")
    truth = _run(layer, inputs, autocast=False, order=order)
    ref_bf16 = _run(layer, inputs, autocast=True, order=order)
    assert emulated[0].dtype == ref_bf16[0].dtype
    # bfloat16 keeps 8 bits: a relative error of a few 2^-8 is its floor, for both paths alike.
    error = _relative(emulated[0], truth[0])
    assert error < 2e-2 and error < 2 * _relative(ref_bf16[0], truth[0]) + 2e-3, (error, name)
    assert emulated[1].keys() >= truth[1].keys()
    for param, grad in emulated[1].items():
        if param not in truth[1]:  # a bias the gradient norm does not depend on: zero, not absent
            assert grad.abs().max() == 0, (name, param)
            continue
        error, floor = _relative(grad, truth[1][param]), _relative(ref_bf16[1][param], truth[1][param])
        assert grad.dtype == torch.float32, param  # parameter gradients stay in the parameters' dtype
        assert error < 5e-2 and error < 2 * floor + 5e-3, (name, param, error, floor)


def test_bias_act_takes_bfloat16_and_rejects_mixed_dtypes(emulated_ops):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 4, 4, generator=gen)
    b = torch.randn(5, generator=gen)
    for act in ("lrelu", "tanh", "swish"):
        got = bias_act(x.bfloat16(), b.bfloat16(), act=act, clamp=1.5)
        expect = bias_act_ref(x.bfloat16().float(), b.bfloat16().float(), act=act, clamp=1.5)
        assert got.dtype == torch.bfloat16
        # The kernel computes in float32 and rounds once: within half a bfloat16 step of float32.
        torch.testing.assert_close(got.float(), expect, rtol=2**-8, atol=1e-6)
    with pytest.raises(TypeError, match="bias dtype torch.float32 differs from x dtype torch.bfloat16"):
        bias_act(x.bfloat16(), b)


@pytest.mark.parametrize(
    "kwargs",
    [dict(up=2, padding=[2, 1, 2, 1], gain=4), dict(down=2, padding=[1, 1, 1, 1])],
    ids=["up", "down"],
)
def test_upfirdn2d_in_bfloat16_accumulates_in_float32(emulated_ops, kwargs):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 9, 9, generator=gen).bfloat16()
    f = setup_filter([1, 3, 3, 1])
    got = upfirdn2d(x, f, **kwargs)
    assert got.dtype == torch.bfloat16 and emulated_ops["upfirdn2d"] > 0
    expect = upfirdn2d_ref(x.float(), f, **kwargs)
    torch.testing.assert_close(got.float(), expect, rtol=2**-8, atol=1e-6)
