"""2-D convolution fused with FIR up/downsampling, as the modulated conv layers of StyleGAN2 need it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .upfirdn2d import _pair, downsample_padding, parse_padding, upfirdn2d, upsample_padding


def _conv_padding(f, up, down, padding) -> list[int]:
    """Total (x0, x1, y0, y1) padding of the defining upfirdn2d: the caller's plus both filters'."""
    pad = list(parse_padding(padding))
    for enabled, extra in (
        (up > 1, upsample_padding(f, up)),
        (down > 1, downsample_padding(f, down)),
    ):
        if enabled:
            pad = [p + e for p, e in zip(pad, extra, strict=True)]
    return pad


def conv2d_resample_ref(x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False):
    """The definition: upfirdn2d(up, total padding) -> valid conv2d -> upfirdn2d(down).

    f filters only where there is resampling: without up, the first step only pads.
    """
    pad = _conv_padding(f, up, down, padding)
    if not flip_weight:
        w = w.flip([2, 3])
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=pad, flip_filter=flip_filter, gain=up**2)
    x = F.conv2d(x, w.to(x.dtype), groups=groups)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def conv2d_resample(
    x, w, f=None, up=1, down=1, padding=0, groups=1, flip_weight=True, flip_filter=False, impl=None
):
    """Convolve x [N, Cin, H, W] with w [Cout, Cin/groups, kh, kw], upsampling or downsampling by f.

    Equal to `conv2d_resample_ref` (up by `up` with filter f and gain up**2, zero padding
    `padding` in upsampled pixels, a valid convolution, down by `down` with f), computed the cheap
    way: a strided transposed conv before the filter for up, the filter before a strided conv for
    down, and 1x1 kernels applied at the lower resolution. flip_weight=True is PyTorch's conv2d
    (correlation). Output for padding=kh//2 and odd kh: [N, Cout, H*up/down, W*up/down].
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x {list(x.shape)} and w {list(w.shape)} must both be 4-D")
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(
            f"x has {x.shape[1]} channels but w {list(w.shape)} with groups={groups} expects "
            f"{w.shape[1] * groups}"
        )
    up, down = _pair(up, "up"), _pair(down, "down")
    if up[0] != up[1] or down[0] != down[1]:
        raise ValueError(f"up={up} and down={down} must be the same along x and y")
    up, down = up[0], down[0]
    kh, kw = w.shape[2:]
    px0, px1, py0, py1 = _conv_padding(f, up, down, padding)
    w = w.to(x.dtype)
    if not flip_weight:
        w = w.flip([2, 3])

    if kh == 1 and kw == 1 and (up > 1 or down > 1):
        # A 1x1 conv commutes with resampling: run it where there are fewer pixels.
        if down > 1 and up == 1:
            x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl=impl)
            return F.conv2d(x, w, groups=groups)
        if up > 1 and down == 1:
            x = F.conv2d(x, w, groups=groups)
            return upfirdn2d(
                x,
                f,
                up=up,
                padding=[px0, px1, py0, py1],
                gain=up**2,
                flip_filter=flip_filter,
                impl=impl,
            )

    if down > 1 and up == 1:
        # Filtering and a valid conv commute; subsampling a valid conv is a strided conv.
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter, impl=impl)
        return F.conv2d(x, w, stride=down, groups=groups)

    if up > 1:
        # A stride-`up` transposed conv with the flipped kernel is the valid conv of the
        # zero-inserted input; the filter then needs the padding shifted by the kernel's extent.
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        crop_x, crop_y = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        wt = _transpose_weight(w.flip([2, 3]), groups)
        x = F.conv_transpose2d(x, wt, stride=up, padding=[crop_y, crop_x], groups=groups)
        pad = [px0 + crop_x, px1 + crop_x, py0 + crop_y, py1 + crop_y]
        x = upfirdn2d(x, f, padding=pad, gain=up**2, flip_filter=flip_filter, impl=impl)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl=impl)
        return x

    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return F.conv2d(x, w, padding=[py0, px0], groups=groups)
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1], impl=impl)
    return F.conv2d(x, w, groups=groups)


def _transpose_weight(w: torch.Tensor, groups: int) -> torch.Tensor:
    """[Cout, Cin/g, kh, kw] -> conv_transpose2d's [Cin, Cout/g, kh, kw]."""
    cout, cin_g, kh, kw = w.shape
    w = w.reshape(groups, cout // groups, cin_g, kh, kw).transpose(1, 2)
    return w.reshape(groups * cin_g, cout // groups, kh, kw)
