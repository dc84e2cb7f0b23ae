"""The CUDA kernels against the PyTorch reference, on the same CUDA tensors: values and gradients.

Every test needs a GPU and is skipped without one; the first CUDA call of each op builds its
extension (once per process). float16 results are compared, in float32, with the reference
computed in float32 from the same float16 inputs, so the tolerance measures the kernels' own
rounding and not the reference's.
"""

from __future__ import annotations

import dataclasses
import warnings
from functools import partial

import pytest
import torch

from stylevid.custom_ops import (
    ACTIVATIONS,
    bias_act,
    conv2d_resample,
    dispatch,
    downsample2d,
    filter2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

DEVICE = torch.device("cuda")


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """rtol as usual; atol relative to the largest magnitude in the reference tensor."""

    rtol: float
    atol: float


TOLERANCES = {
    # Both paths accumulate in float32; they differ by summation order and --use_fast_math's
    # exp/division (a few ulp), far below what a wrong tap, offset or derivative gives.
    torch.float32: Tolerance(rtol=1e-4, atol=2e-5),
    # The kernels round their float32 result to float16 (2^-11 relative) once per pass, and the
    # second-order paths chain up to three passes through float16 intermediates.
    torch.float16: Tolerance(rtol=1e-2, atol=1e-2),
}
DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
LAYOUTS = pytest.mark.parametrize("layout", ["contiguous", "channels_last"])


@pytest.fixture(autouse=True)
def ieee_fp32_convolutions():
    """The reference ops are cuDNN convolutions, whose float32 default on Ampere and later is TF32
    (a 10-bit mantissa): its error would swamp the float32 tolerance."""
    conv = torch.backends.cudnn.conv
    saved = conv.fp32_precision
    conv.fp32_precision = "ieee"
    yield
    conv.fp32_precision = saved


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded CPU generator: every test draws the same values on every GPU."""
    return torch.Generator().manual_seed(2024)


def randn(gen: torch.Generator, shape) -> torch.Tensor:
    """Standard-normal float32 values of `shape`, drawn on the CPU and moved to the GPU."""
    return torch.randn(tuple(shape), generator=gen).to(DEVICE)


def with_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """x as is for 'contiguous', or with NHWC strides for 'channels_last'."""
    return x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """actual matches expected, in float32, within the tolerance of `dtype`."""
    tol = TOLERANCES[dtype]
    expected = expected.detach().float()
    scale = max(expected.abs().max().item(), 1e-6) if expected.numel() else 1.0
    torch.testing.assert_close(
        actual.detach().float(),
        expected,
        rtol=tol.rtol,
        atol=tol.atol * scale,
        msg=lambda m: f"{what} ({dtype}, cuda vs ref): {m}",
    )


def derivatives(op, impl: str, inputs, dy: torch.Tensor, v) -> list[torch.Tensor]:
    """[output, d/d input..., d2/d input..., d2/d dy] of op(*inputs, impl=impl).

    The first gradients are of (output * dy).sum(); the second of sum((first_i * v_i).sum()),
    which is how R1 regularisation differentiates a gradient: through the backward itself.
    """
    leaves = [t.detach().requires_grad_() for t in inputs]
    dy = dy.detach().requires_grad_()
    y = op(*leaves, impl=impl)
    firsts = torch.autograd.grad(y, leaves, dy, create_graph=True)
    loss = sum((g * w).sum() for g, w in zip(firsts, v, strict=True))
    seconds = torch.autograd.grad(loss, [*leaves, dy], allow_unused=True)
    # A gradient that does not depend on a tensor (a linear op's, on its input) comes back None.
    seconds = [torch.zeros_like(t) if g is None else g for g, t in zip(seconds, [*leaves, dy], strict=True)]
    return [y, *firsts, *seconds]


def assert_parity(op, inputs, names, dtype: torch.dtype, gen: torch.Generator) -> None:
    """op(*inputs, impl='cuda') in `dtype` matches impl='ref' in float32, derivatives included.

    inputs: float32 CUDA tensors named by `names`; both paths start from their `dtype` rounding.
    """
    with torch.no_grad():
        out_shape = op(*inputs, impl="ref").shape
    dy, *v = (randn(gen, s).to(dtype) for s in [out_shape, *(t.shape for t in inputs)])
    rounded = [t.to(dtype) for t in inputs]
    cuda = derivatives(op, "cuda", rounded, dy, v)
    ref = derivatives(op, "ref", [t.float() for t in rounded], dy.float(), [w.float() for w in v])
    labels = ["output", *(f"d/d{n}" for n in names), *(f"d2/d{n}" for n in [*names, "dy"])]
    for label, actual, expected in zip(labels, cuda, ref, strict=True):
        assert actual.dtype == dtype, f"{label}: the CUDA path returned {actual.dtype} for {dtype} inputs"
        assert_close(actual, expected, dtype, label)


def assert_channels_last_matches_contiguous(op, x: torch.Tensor, gen: torch.Generator) -> None:
    """op (a CUDA path) on the NHWC copy of x [N, C, H, W] gives NHWC output, and the same output
    and input gradient as on x itself, bit for bit: the kernels read and write strided memory."""
    with torch.no_grad():
        dy = randn(gen, op(x).shape).to(x.dtype)
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        leaf = x.contiguous(memory_format=layout).detach().requires_grad_()
        y = op(leaf)
        results.append((y.detach(), *torch.autograd.grad(y, leaf, dy)))
    (y, dx), (y_cl, dx_cl) = results
    assert y_cl.is_contiguous(memory_format=torch.channels_last), f"NHWC input gave strides {y_cl.stride()}"
    torch.testing.assert_close(y_cl, y, rtol=0, atol=0, msg=lambda m: f"output: {m}")
    torch.testing.assert_close(dx_cl, dx, rtol=0, atol=0, msg=lambda m: f"d/dx: {m}")


# ---------------------------------------------------------------------------------------------
# upfirdn2d

# name -> (taps, separable). Asymmetric taps, so that a flipped filter shows.
FILTERS = {
    "4x4": ([1, 3, 3, 1], False),  # StyleGAN2's binomial, as one 2-D filter
    "3x5": ([[1, 2, 3, 4, 5], [6, 7, 1, 2, 3], [4, 5, 6, 7, 1]], False),
    "sep8": ([1, 3, 2, 5, 4, 3, 2, 1], True),
    "sep3": ([1, 2, 4], True),
}


def make_filter(name: str | None) -> torch.Tensor | None:
    """The filter FILTERS[name] on the GPU; None stays None (upfirdn2d's 1x1 identity)."""
    if name is None:
        return None
    taps, separable = FILTERS[name]
    return setup_filter(taps, device=DEVICE, separable=separable)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """One upfirdn2d call: input shape, filter name and the op's arguments."""

    shape: tuple[int, int, int, int]
    filter: str | None
    up: int | tuple[int, int] = 1
    down: int | tuple[int, int] = 1
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    flip_filter: bool = False
    gain: float = 1.0

    def op(self):
        """upfirdn2d with these arguments, called as op(x, impl=...)."""
        return partial(
            upfirdn2d,
            f=make_filter(self.filter),
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_filter=self.flip_filter,
            gain=self.gain,
        )


ODD = (2, 3, 7, 13)
GEOMETRIES = {
    "same-3x5": Geometry(ODD, "3x5", padding=(2, 2, 1, 1)),
    "up2-4x4": Geometry(ODD, "4x4", up=2, padding=(2, 1, 2, 1)),
    "down2-4x4": Geometry(ODD, "4x4", down=2, padding=(1, 1, 1, 1)),
    "up4-sep8": Geometry(ODD, "sep8", up=4, padding=(5, 6, 5, 6)),
    "down4-sep8": Geometry(ODD, "sep8", down=4, padding=(3, 4, 3, 4)),
    "up2down2-3x5": Geometry(ODD, "3x5", up=2, down=2, padding=(2, 2, 1, 1)),
    "up4down2-sep3": Geometry(ODD, "sep3", up=4, down=2, padding=(1, 2, 2, 1)),
    "aniso-3x5": Geometry(ODD, "3x5", up=(2, 1), down=(1, 2), padding=(2, 2, 1, 1)),
    "negative-pad": Geometry(ODD, "4x4", up=2, padding=(-2, 1, 1, -3)),
    "flip-gain-3x5": Geometry(ODD, "3x5", down=2, padding=(1, 3, 0, 2), flip_filter=True, gain=2.5),
    "flip-gain-sep8": Geometry(ODD, "sep8", up=2, padding=(4, 3, 4, 3), flip_filter=True, gain=0.5),
    "no-filter": Geometry(ODD, None, up=2, padding=(0, 1, 1, 0)),
    "1x1-up2": Geometry((2, 3, 1, 1), "4x4", up=2, padding=(2, 1, 2, 1)),
    "1x1-pad": Geometry((2, 3, 1, 1), "3x5", padding=(3, 2, 1, 2)),
    "1x1-down4": Geometry((2, 3, 1, 1), "sep8", down=4, padding=(4, 3, 4, 3)),
}
# A few geometries, one of each kind, for the slower or narrower tests.
SAMPLED = ["up2-4x4", "down4-sep8", "aniso-3x5", "negative-pad", "flip-gain-3x5"]


@LAYOUTS
@DTYPES
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_upfirdn2d(name, dtype, layout, gen):
    geometry = GEOMETRIES[name]
    x = with_layout(randn(gen, geometry.shape), layout)
    assert_parity(geometry.op(), [x], ["x"], dtype, gen)


# name -> (helper, filter, keyword arguments)
HELPERS = {
    "upsample2d-4x4": (upsample2d, "4x4", {}),
    "upsample2d-sep8-up4": (upsample2d, "sep8", {"up": 4}),
    "upsample2d-3x5-pad-gain": (upsample2d, "3x5", {"padding": (1, 0, 0, 1), "gain": 0.5}),
    "downsample2d-4x4": (downsample2d, "4x4", {}),
    "downsample2d-sep8-down4": (downsample2d, "sep8", {"down": 4}),
    "filter2d-4x4": (filter2d, "4x4", {}),
    "filter2d-3x5-pad-flip": (filter2d, "3x5", {"padding": 1, "flip_filter": True}),
}


@LAYOUTS
@DTYPES
@pytest.mark.parametrize("name", list(HELPERS))
def test_resampling_helpers(name, dtype, layout, gen):
    helper, filter_name, kwargs = HELPERS[name]
    x = with_layout(randn(gen, (2, 4, 16, 12)), layout)
    assert_parity(partial(helper, f=make_filter(filter_name), **kwargs), [x], ["x"], dtype, gen)


@DTYPES
@pytest.mark.parametrize("name", SAMPLED)
def test_upfirdn2d_channels_last_matches_contiguous(name, dtype, gen):
    x = randn(gen, ODD).to(dtype)
    assert_channels_last_matches_contiguous(partial(GEOMETRIES[name].op(), impl="cuda"), x, gen)


@pytest.mark.parametrize("name", SAMPLED)
def test_upfirdn2d_gradcheck(name, gen):
    """First and second gradients of the CUDA path against finite differences, in float64."""
    geometry = dataclasses.replace(GEOMETRIES[name], shape=(1, 2, 5, 6))
    x = randn(gen, geometry.shape).double().requires_grad_()
    op = partial(geometry.op(), impl="cuda")
    assert torch.autograd.gradcheck(op, [x])
    assert torch.autograd.gradgradcheck(op, [x])


def test_grid_stride_loop_covers_large_tensors():
    """More elements than one launch has threads (65536 blocks x 256): the loop covers the rest."""
    x = torch.randn((8, 64, 128, 128), device=DEVICE, generator=torch.Generator(DEVICE).manual_seed(1))
    f = make_filter("4x4")
    y = upsample2d(x, f, impl="cuda")
    assert y.numel() > 65536 * 256
    assert_close(y, upsample2d(x, f, impl="ref"), torch.float32, "upsample2d")
    b = torch.linspace(-1, 1, y.shape[1], device=DEVICE)
    expected = bias_act(y, b, act="lrelu", clamp=0.5, impl="ref")
    assert_close(bias_act(y, b, act="lrelu", clamp=0.5, impl="cuda"), expected, torch.float32, "bias_act")


def test_int64_indexing_beyond_2_31_elements():
    """Past 2^31 elements the kernels switch to 64-bit index arithmetic; the far end must be right."""
    needed = 16 * 2**30
    if torch.cuda.mem_get_info(DEVICE)[0] < needed:
        pytest.skip(f"needs {needed / 2**30:.0f} GiB of free GPU memory")
    x = torch.empty((33, 1024, 256, 256), dtype=torch.float16, device=DEVICE)
    x.normal_(generator=torch.Generator(DEVICE).manual_seed(2))
    assert x.numel() > 2**31
    b = torch.linspace(-1, 1, x.shape[1], device=DEVICE, dtype=torch.float16)
    f = make_filter("4x4")
    for name, op in [
        ("filter2d", partial(filter2d, f=f)),
        ("bias_act", partial(bias_act, b=b, act="lrelu", clamp=256)),
    ]:
        y = op(x, impl="cuda")
        # Sample 32 starts at element 2^31 exactly; sample 0 checks that the start is unharmed.
        for n in (0, 32):
            expected = op(x[n : n + 1].float(), impl="ref")
            assert_close(y[n : n + 1], expected, torch.float16, f"{name} sample {n}")
        del y


# ---------------------------------------------------------------------------------------------
# bias_act

# name -> (shape, dim, channels_last)
BIAS_LAYOUTS = {
    "nchw": ((2, 5, 6, 7), 1, False),
    "channels_last": ((2, 5, 6, 7), 1, True),
    "dim2-3d": ((3, 4, 6), 2, False),
}
CLAMPS = pytest.mark.parametrize("clamp", [None, 0.5, 256], ids=["noclamp", "clamp0.5", "clamp256"])


@pytest.mark.parametrize("layout", list(BIAS_LAYOUTS))
@DTYPES
@CLAMPS
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_bias_act(act, bias, clamp, dtype, layout, gen):
    shape, dim, channels_last = BIAS_LAYOUTS[layout]
    x = with_layout(randn(gen, shape), "channels_last" if channels_last else "contiguous")
    inputs, names = ([x, randn(gen, [shape[dim]])], ["x", "b"]) if bias else ([x], ["x"])
    assert_parity(partial(bias_act, dim=dim, act=act, clamp=clamp), inputs, names, dtype, gen)


@DTYPES
@pytest.mark.parametrize("act", ["lrelu", "swish"])
def test_bias_act_channels_last_matches_contiguous(act, dtype, gen):
    op = partial(bias_act, b=randn(gen, [5]).to(dtype), act=act, clamp=0.5, impl="cuda")
    assert_channels_last_matches_contiguous(op, randn(gen, (2, 5, 6, 7)).to(dtype), gen)


@pytest.mark.parametrize("clamp", [None, 0.5], ids=["noclamp", "clamp0.5"])
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_bias_act_gradcheck(act, clamp, gen):
    """First and second gradients (x and b) of the CUDA path against finite differences, float64."""
    x = randn(gen, (2, 3, 4, 5)).double().requires_grad_()
    b = randn(gen, [3]).double().requires_grad_()
    op = partial(bias_act, act=act, clamp=clamp, impl="cuda")
    assert torch.autograd.gradcheck(op, [x, b])
    assert torch.autograd.gradgradcheck(op, [x, b])


# ---------------------------------------------------------------------------------------------
# conv2d_resample, and the dispatcher

# name -> (x shape, w shape, keyword arguments)
CONVS = {
    "3x3-up2": ((2, 8, 9, 7), (6, 8, 3, 3), {"up": 2, "padding": 1}),
    "3x3-down2": ((2, 8, 10, 14), (6, 8, 3, 3), {"down": 2, "padding": 1}),
    "1x1-down2": ((2, 8, 10, 14), (6, 8, 1, 1), {"down": 2}),
}


@LAYOUTS
@DTYPES
@pytest.mark.parametrize("name", list(CONVS))
def test_conv2d_resample(name, dtype, layout, gen):
    x_shape, w_shape, kwargs = CONVS[name]
    x = with_layout(randn(gen, x_shape), layout)
    w = randn(gen, w_shape)
    op = partial(conv2d_resample, f=make_filter("4x4"), **kwargs)
    assert_parity(op, [x, w], ["x", "w"], dtype, gen)


def test_auto_picks_the_cuda_kernels_without_warnings(monkeypatch, gen):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    x = randn(gen, (2, 4, 8, 8)).requires_grad_()
    b = randn(gen, [4])
    f = make_filter("4x4")
    # Build (or load) first: what is checked is the dispatch, not the compiler's chatter.
    upsample2d(x, f, impl="cuda")
    bias_act(x, b, impl="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("upfirdn2d", "bias_act"):
            chosen = dispatch.plugin(name, x)
            assert chosen is not None, f"impl='auto' chose the reference {name} for a CUDA tensor"
            assert chosen is dispatch.plugin(name, x, "cuda")
        y = bias_act(upsample2d(x, f), b, act="lrelu")
        y.sum().backward()
    expected = bias_act(upsample2d(x, f, impl="cuda"), b, act="lrelu", impl="cuda")
    torch.testing.assert_close(y.detach(), expected.detach(), rtol=0, atol=0)
