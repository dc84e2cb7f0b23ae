"""upfirdn2d: the reference against scipy and a naive loop; gradients; the kernel emulation."""

import numpy as np
import pytest
import scipy.signal
import torch

from stylevid.custom_ops import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d
from stylevid.custom_ops.upfirdn2d import upfirdn2d_plugin, upfirdn2d_ref


def scipy_axis(
    x: np.ndarray, taps: np.ndarray, up: int, down: int, p0: int, p1: int, axis: int
) -> np.ndarray:
    """One axis of upfirdn2d from scipy's full-mode upfirdn, re-padded to (p0, p1)."""
    full = scipy.signal.upfirdn(taps, x, up=up, down=1, axis=axis)
    n_in = x.shape[axis]
    n_out = n_in * up + p0 + p1 - len(taps) + 1  # before subsampling
    # Full mode starts len(taps)-1 samples before the first input sample; we start p0 before.
    idx = np.arange(n_out) + len(taps) - 1 - p0
    valid = (idx >= 0) & (idx < full.shape[axis])
    out = np.take(full, np.clip(idx, 0, full.shape[axis] - 1), axis=axis)
    shape = [1] * x.ndim
    shape[axis] = n_out
    out = out * valid.reshape(shape)
    return np.take(out, np.arange(0, n_out, down), axis=axis)


def naive_2d(x: np.ndarray, f: np.ndarray, up, down, pad, flip, gain) -> np.ndarray:
    """upfirdn2d by the definition, with explicit loops (non-separable 2-D filter)."""
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, pad
    n, c, h, w = x.shape
    fh, fw = f.shape
    big = np.zeros((n, c, h * upy + py0 + py1, w * upx + px0 + px1))
    for iy in range(h):
        for ix in range(w):
            y, xx = iy * upy + py0, ix * upx + px0
            if 0 <= y < big.shape[2] and 0 <= xx < big.shape[3]:
                big[:, :, y, xx] = x[:, :, iy, ix]
    k = f if flip else f[::-1, ::-1]
    out_h, out_w = big.shape[2] - fh + 1, big.shape[3] - fw + 1
    out = np.zeros((n, c, out_h, out_w))
    for oy in range(out_h):
        for ox in range(out_w):
            out[:, :, oy, ox] = (big[:, :, oy : oy + fh, ox : ox + fw] * k).sum(axis=(2, 3))
    return gain * out[:, :, ::downy, ::downx]


SEPARABLE_CASES = [
    # (taps, up, down, padding [x0, x1, y0, y1])
    (4, 1, 1, [1, 2, 2, 1]),
    (4, 2, 1, [2, 1, 2, 1]),
    (4, 1, 2, [1, 1, 1, 1]),
    (3, 2, 2, [0, 3, 2, 0]),
    (6, 4, 1, [3, 2, 4, 1]),
    (5, 1, 4, [2, 2, 0, 0]),
    (2, 3, 2, [-1, 2, 1, -2]),
    (1, 2, 1, [0, 0, 0, 0]),
    (8, 1, 1, [-2, -1, 3, 3]),
]


@pytest.mark.parametrize("taps,up,down,pad", SEPARABLE_CASES)
@pytest.mark.parametrize("flip", [False, True])
def test_separable_matches_scipy(taps, up, down, pad, flip):
    rng = np.random.default_rng(taps * 100 + up * 10 + down)
    x = rng.standard_normal((2, 3, 9, 11))
    f = rng.standard_normal(taps)
    gain = 1.7
    expect = scipy_axis(x, f[::-1] if flip else f, up, down, pad[0], pad[1], axis=3)
    expect = scipy_axis(expect, f[::-1] if flip else f, up, down, pad[2], pad[3], axis=2) * gain
    got = upfirdn2d_ref(torch.from_numpy(x), torch.from_numpy(f), up, down, pad, flip, gain)
    np.testing.assert_allclose(got.numpy(), expect, rtol=1e-10, atol=1e-10)


def test_per_axis_factors_match_scipy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 7, 6))
    f = rng.standard_normal(4)
    expect = scipy_axis(x, f, 2, 1, 2, 1, axis=3)
    expect = scipy_axis(expect, f, 1, 3, 1, 2, axis=2)
    got = upfirdn2d_ref(
        torch.from_numpy(x), torch.from_numpy(f), up=[2, 1], down=[1, 3], padding=[2, 1, 1, 2]
    )
    np.testing.assert_allclose(got.numpy(), expect, atol=1e-10)


@pytest.mark.parametrize(
    "fshape,up,down,pad",
    [
        ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)),
        ((4, 4), (2, 2), (1, 1), (2, 1, 2, 1)),
        ((3, 5), (1, 2), (2, 1), (2, 2, 0, 1)),
        ((2, 3), (3, 1), (1, 3), (-1, 1, 2, -1)),
        ((1, 4), (2, 2), (2, 2), (1, 2, 0, 0)),
    ],
)
@pytest.mark.parametrize("flip", [False, True])
def test_nonseparable_matches_naive_loop(fshape, up, down, pad, flip):
    rng = np.random.default_rng(sum(fshape) + sum(up))
    x = rng.standard_normal((2, 2, 6, 7))
    f = rng.standard_normal(fshape)
    expect = naive_2d(x, f, up, down, pad, flip, gain=0.6)
    got = upfirdn2d_ref(torch.from_numpy(x), torch.from_numpy(f), list(up), list(down), list(pad), flip, 0.6)
    np.testing.assert_allclose(got.numpy(), expect, atol=1e-10)


def test_setup_filter_normalises_and_chooses_separable():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and abs(f.sum().item() - 1) < 1e-6
    torch.testing.assert_close(
        f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64
    )
    assert setup_filter(list(range(1, 9))).shape == (8,)
    assert setup_filter([1, 2], separable=True).shape == (2,)
    assert setup_filter([1, 2, 3], gain=4).sum().item() == pytest.approx(4)
    assert setup_filter([1, 2, 3], normalize=False, flip_filter=True)[0, 0].item() == 9


@pytest.mark.parametrize("f", [[1, 3, 3, 1], [1, 2, 1], [1, 3, 6, 10, 10, 6, 3, 1]])
def test_resampling_helpers_keep_constants_and_sizes(f):
    f = setup_filter(f)
    x = torch.full([1, 2, 16, 16], 3.0, dtype=torch.float64)
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    same = filter2d(x, f)
    assert up.shape == (1, 2, 32, 32) and down.shape == (1, 2, 8, 8) and same.shape == x.shape
    # Away from the zero-padded borders a normalised filter passes a constant unchanged.
    for y, border in ((up, 8), (down, 2), (same, 4)):
        torch.testing.assert_close(
            y[:, :, border:-border, border:-border],
            torch.full_like(y, 3.0)[:, :, border:-border, border:-border],
        )


def test_upsample_then_downsample_is_centred():
    """A centred pair of resamplers must not shift the image: the round trip keeps the centroid."""
    f = setup_filter([1, 3, 3, 1])
    x = torch.zeros([1, 1, 16, 16], dtype=torch.float64)
    x[0, 0, 7:9, 5:7] = 1
    y = downsample2d(upsample2d(x, f), f)
    grid = torch.arange(16, dtype=torch.float64)

    def centroid(img):
        img = img[0, 0]
        return (img.sum(1) * grid).sum() / img.sum(), (img.sum(0) * grid).sum() / img.sum()

    for a, b in zip(centroid(x), centroid(y), strict=True):
        assert abs(a - b) < 1e-9


@pytest.mark.parametrize(
    "bad,match",
    [
        (dict(up=0), "up=0"),
        (dict(down=[1, 2, 3]), "down="),
        (dict(padding=[1, 2, 3]), "padding="),
        (dict(padding=-5), "output would be"),
    ],
)
def test_bad_arguments_name_the_value(bad, match):
    with pytest.raises(ValueError, match=match):
        upfirdn2d(torch.zeros(1, 1, 4, 4), setup_filter([1, 1]), impl="ref", **bad)


def test_bad_shapes_name_the_value():
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        upfirdn2d(torch.zeros(4, 4), None, impl="ref")
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        upfirdn2d(torch.zeros(1, 1, 4, 4), torch.ones(2, 2, 2), impl="ref")


GRAD_CASES = [
    dict(up=2, padding=[2, 1, 2, 1]),
    dict(down=2, padding=[1, 1, 1, 1]),
    dict(up=2, down=2, padding=[1, 2, 0, 3]),
    dict(up=[1, 2], down=[3, 1], padding=[-1, 2, 1, 0], flip_filter=True, gain=2.5),
    dict(up=4, padding=[3, 2, 3, 2]),
    dict(down=4, padding=[0, 1, 2, 1]),
]


@pytest.mark.parametrize("kwargs", GRAD_CASES)
@pytest.mark.parametrize("separable", [False, True])
def test_ref_gradcheck(kwargs, separable):
    torch.manual_seed(0)
    x = torch.randn(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    f = torch.randn(4, dtype=torch.float64) if separable else torch.randn(3, 4, dtype=torch.float64)
    fn = lambda t: upfirdn2d_ref(t, f, **kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


# The kernel's own arithmetic (custom_ops/csrc/upfirdn2d_core.h), run on the CPU.


EMULATION_CASES = [
    ((4,), dict(up=2, padding=[2, 1, 2, 1])),
    ((4, 4), dict(down=2, padding=[1, 1, 1, 1])),
    ((3, 5), dict(up=[2, 1], down=[1, 2], padding=[1, 3, 2, 0])),
    ((2, 3), dict(up=3, down=2, padding=[-1, 2, 2, -1], flip_filter=True, gain=1.5)),
    ((8,), dict(up=4, down=1, padding=[5, 4, 5, 4])),
    ((4, 4), dict(down=4, padding=[1, 1, 1, 1])),
    ((1, 1), dict(padding=[0, 0, 0, 0])),
]


@pytest.mark.parametrize("fshape,kwargs", EMULATION_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_emulated_kernel_matches_reference(emulator, fshape, kwargs, channels_last, dtype):
    gen = torch.Generator().manual_seed(len(fshape) * 7 + sum(fshape))
    x = torch.randn(2, 3, 7, 13, generator=gen, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    f = torch.randn(fshape, generator=gen)
    got = upfirdn2d_plugin(emulator, x, f, **kwargs)
    expect = upfirdn2d_ref(x, f.to(dtype), **kwargs)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, expect, rtol=tol, atol=tol)
    assert got.dtype == dtype


def test_emulated_kernel_keeps_channels_last(emulator):
    x = torch.randn(2, 5, 6, 6).to(memory_format=torch.channels_last)
    y = upfirdn2d_plugin(emulator, x, setup_filter([1, 3, 3, 1]), up=2, padding=[2, 1, 2, 1])
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()


@pytest.mark.parametrize("fshape,kwargs", EMULATION_CASES[:6])
def test_emulated_kernel_gradients(emulator, fshape, kwargs):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    f = torch.randn(fshape, generator=gen, dtype=torch.float64)
    fn = lambda t: upfirdn2d_plugin(emulator, t, f, **kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
