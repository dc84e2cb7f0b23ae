"""Upsample, FIR-filter and downsample 2-D images in one op, with a PyTorch reference and a CUDA kernel.

Per axis: insert `up - 1` zeros after every sample, pad by (p0, p1) zeros (negative crops),
convolve with the filter, keep every `down`-th sample, multiply by `gain`. A 1-D filter is
separable (applied along x, then y); a 2-D filter is applied as is. `flip_filter=False` is true
convolution, `True` correlation. The gradient of an upfirdn2d is another upfirdn2d with up and
down swapped and the filter flipped, so gradients of every order come from the same kernel.
"""

from __future__ import annotations

from types import ModuleType

import torch
import torch.nn.functional as F

from . import dispatch


def _pair(value, name: str) -> tuple[int, int]:
    """(x, y) from an int or a pair; both at least 1."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"{name}={value!r} must be a positive int or a pair [x, y] of them")
    return pair


def parse_padding(padding) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, [x, y] or [x0, x1, y0, y1]."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return tuple(padding)
    raise ValueError(f"padding={padding!r} must be an int, [x, y] or [x0, x1, y0, y1]")


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter; a 1-D (separable) filter is square."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    if f.ndim == 2:
        return f.shape[1], f.shape[0]
    raise ValueError(f"filter of shape {list(f.shape)} must be 1-D (separable) or 2-D")


def setup_filter(
    f=None, device=None, normalize=True, flip_filter=False, gain=1.0, separable=None
) -> torch.Tensor:
    """A float32 filter tensor from a list/array/tensor: [taps] (separable) or [fh, fw].

    normalize: divide by the sum so the DC gain is 1; gain: overall gain, spread over the axes;
    separable: keep a 1-D filter 1-D (default: only when it has 8 taps or more, where two 1-D
    passes beat one 2-D pass).
    """
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32, device=device)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"filter of shape {list(f.shape)} must be a non-empty 1-D or 2-D array")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim == 2 and separable:
        raise ValueError("separable=True needs a 1-D filter")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f * (gain ** (f.ndim / 2))


def output_size(in_size: int, up: int, down: int, p0: int, p1: int, taps: int) -> int:
    """Length of one axis of the output."""
    return (in_size * up + p0 + p1 - taps) // down + 1


def _check(x: torch.Tensor, f: torch.Tensor | None, up, down, padding):
    if x.ndim != 4:
        raise ValueError(f"x of shape {list(x.shape)} must be [N, C, H, W]")
    if f is not None and not f.is_floating_point():
        raise TypeError(f"filter dtype {f.dtype} must be floating point; use setup_filter()")
    upx, upy = _pair(up, "up")
    downx, downy = _pair(down, "down")
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    out_h = output_size(x.shape[2], upy, downy, py0, py1, fh)
    out_w = output_size(x.shape[3], upx, downx, px0, px1, fw)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"upfirdn2d output would be {out_h}x{out_w} for input {x.shape[2]}x{x.shape[3]}, "
            f"up={up}, down={down}, padding={padding}, filter {fh}x{fw}: pad more or use a "
            f"smaller filter"
        )
    return (upx, upy), (downx, downy), (px0, px1, py0, py1)


def upfirdn2d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1, impl=None) -> torch.Tensor:
    """Resample x [N, C, H, W] with FIR filter f ([taps] separable, [fh, fw], or None for [1])."""
    up, down, padding = _check(x, f, up, down, padding)
    plugin = dispatch.plugin("upfirdn2d", x, impl)
    if plugin is None:
        return upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain)
    return upfirdn2d_plugin(plugin, x, f, up, down, padding, flip_filter, gain)


def upfirdn2d_ref(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1) -> torch.Tensor:
    """The specification: zero insertion, F.pad, a depthwise conv2d and strided slicing."""
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = _check(x, f, up, down, padding)
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1]).reshape(n, c, h * upy, w * upx)
    x = F.pad(x, [px0, px1, py0, py1])  # negative entries crop
    # conv2d correlates; flipping the filter makes it a true convolution.
    f = (f * gain ** (f.ndim / 2)).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 1:
        x = F.conv2d(x, f.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        x = F.conv2d(x, f.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    else:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    return x[:, :, ::downy, ::downx]


def upfirdn2d_plugin(plugin: ModuleType, x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """upfirdn2d through a compiled extension (the CUDA kernel, or its CPU emulation in tests)."""
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = _check(x, f, up, down, padding)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    if f is None:
        f = torch.ones([1, 1])
    f = f.to(device=x.device, dtype=acc).contiguous()
    if f.ndim == 2:
        return _Upfirdn2d.apply(x, f, plugin, (upx, upy, downx, downy, px0, px1, py0, py1), flip_filter, gain)
    # Separable: one pass along x, then one along y; the kernel only takes 2-D filters.
    x = _Upfirdn2d.apply(x, f[None, :], plugin, (upx, 1, downx, 1, px0, px1, 0, 0), flip_filter, 1.0)
    return _Upfirdn2d.apply(x, f[:, None], plugin, (1, upy, 1, downy, 0, 0, py0, py1), flip_filter, gain)


class _Upfirdn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, plugin, geometry, flip, gain):
        ctx.save_for_backward(f)
        ctx.plugin, ctx.geometry, ctx.flip, ctx.gain = plugin, geometry, flip, float(gain)
        ctx.in_size = x.shape[2:]
        return plugin.upfirdn2d(x, f, *geometry, flip, float(gain))

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        upx, upy, downx, downy, px0, px1, py0, py1 = ctx.geometry
        fh, fw = f.shape
        in_h, in_w = ctx.in_size
        out_h, out_w = dy.shape[2:]
        # The transpose of "insert zeros, pad, convolve, subsample" is "insert zeros (by down),
        # pad, correlate, subsample (by up)", padded so that it lands back on the input grid.
        grad_geometry = (
            downx,
            downy,
            upx,
            upy,
            fw - 1 - px0,
            in_w * upx - out_w * downx + px0 - upx + 1,
            fh - 1 - py0,
            in_h * upy - out_h * downy + py0 - upy + 1,
        )
        dx = _Upfirdn2d.apply(dy, f, ctx.plugin, grad_geometry, not ctx.flip, ctx.gain)
        return dx, None, None, None, None, None


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl=None) -> torch.Tensor:
    """Filter x [N, C, H, W] with f keeping its size (for padding=0); odd and even filters centred."""
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)
    pad = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample_padding(f, up) -> tuple[int, int, int, int]:
    """Padding that makes an up-by-`up` upfirdn2d output exactly up times larger, centred."""
    fw, fh = filter_size(f)
    upx, upy = _pair(up, "up")
    return (fw + upx - 1) // 2, (fw - upx) // 2, (fh + upy - 1) // 2, (fh - upy) // 2


def downsample_padding(f, down) -> tuple[int, int, int, int]:
    """Padding that makes a down-by-`down` upfirdn2d output exactly down times smaller, centred."""
    fw, fh = filter_size(f)
    downx, downy = _pair(down, "down")
    return (fw - downx + 1) // 2, (fw - downx) // 2, (fh - downy + 1) // 2, (fh - downy) // 2


def _add(a, b) -> list[int]:
    return [int(i + j) for i, j in zip(a, b, strict=True)]


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl=None) -> torch.Tensor:
    """Upsample x [N, C, H, W] by `up` with FIR filter f: [N, C, H*up, W*up] for padding=0."""
    upx, upy = _pair(up, "up")
    pad = _add(parse_padding(padding), upsample_padding(f, up))
    return upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl=None) -> torch.Tensor:
    """Downsample x [N, C, H, W] by `down` after FIR filter f: [N, C, H/down, W/down] for padding=0."""
    pad = _add(parse_padding(padding), downsample_padding(f, down))
    return upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)
