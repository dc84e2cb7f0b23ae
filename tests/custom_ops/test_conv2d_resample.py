"""conv2d_resample: each fast path equals the definition; the definition equals a direct computation."""

import pytest
import torch
import torch.nn.functional as F

from stylevid.custom_ops import conv2d_resample, conv2d_resample_ref, setup_filter, upfirdn2d_ref
from stylevid.custom_ops.conv2d_resample import _conv_padding

CASES = [
    # (kernel, up, down, padding, groups)
    (3, 1, 1, 1, 1),
    (3, 1, 1, [2, 0, 1, 1], 1),
    (3, 2, 1, 1, 1),
    (3, 1, 2, 1, 1),
    (1, 2, 1, 0, 1),
    (1, 1, 2, 0, 1),
    (3, 2, 2, 1, 1),
    (5, 2, 1, [2, 1, 3, 0], 1),
    (3, 2, 1, 1, 2),
    (3, 1, 2, 1, 2),
    (3, 4, 1, 1, 1),
    (4, 2, 1, -1, 1),
]


@pytest.mark.parametrize("k,up,down,padding,groups", CASES)
@pytest.mark.parametrize("flip_weight", [True, False])
def test_fast_paths_equal_definition(k, up, down, padding, groups, flip_weight):
    gen = torch.Generator().manual_seed(k * 10 + up + down)
    x = torch.randn(2, 4, 9, 8, generator=gen, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, generator=gen, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    kw = dict(f=f, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight)
    expect = conv2d_resample_ref(x, w, **kw)
    got = conv2d_resample(x, w, impl="ref", **kw)
    assert got.shape == expect.shape
    torch.testing.assert_close(got, expect, rtol=1e-10, atol=1e-10)


def test_definition_equals_zero_stuffing_computation():
    """Up 2, 3x3: zero-insert, pad, filter with f*4, correlate with w — spelled out by hand."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 5, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    z = torch.zeros(1, 2, 10, 10, dtype=torch.float64)
    z[:, :, ::2, ::2] = x
    # upsample padding (2, 1) plus the caller's 1 on each side
    z = F.pad(z, [3, 2, 3, 2])
    z = F.conv2d(z, (f * 4).flip([0, 1]).expand(2, 1, 4, 4), groups=2)
    expect = F.conv2d(z, w)
    got = conv2d_resample(x, w, f=f, up=2, padding=1, impl="ref")
    assert got.shape == (1, 3, 10, 10)
    torch.testing.assert_close(got, expect)


def test_standard_layer_shapes():
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 8, 16, 16)
    assert conv2d_resample(x, torch.randn(4, 8, 3, 3), f, up=2, padding=1).shape == (2, 4, 32, 32)
    assert conv2d_resample(x, torch.randn(4, 8, 3, 3), f, down=2, padding=1).shape == (2, 4, 8, 8)
    assert conv2d_resample(x, torch.randn(4, 8, 1, 1), f, down=2).shape == (2, 4, 8, 8)
    assert conv2d_resample(x, torch.randn(4, 8, 3, 3), padding=1).shape == (2, 4, 16, 16)


def test_padding_accounts_for_both_filters():
    f = setup_filter([1, 3, 3, 1])
    assert _conv_padding(f, 2, 1, 0) == [2, 1, 2, 1]
    assert _conv_padding(f, 1, 2, 0) == [1, 1, 1, 1]
    assert _conv_padding(f, 2, 2, [1, 0, 0, 1]) == [4, 2, 3, 3]
    assert _conv_padding(None, 1, 1, 1) == [1, 1, 1, 1]


@pytest.mark.parametrize("up,down", [(2, 1), (1, 2)])
def test_double_backward_through_resampling_conv(up, down):
    """R1 differentiates the discriminator's gradient: second order must hold through every path."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 6, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).double()
    fn = lambda x, w: conv2d_resample(x, w, f, up=up, down=down, padding=1, impl="ref")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


def test_mismatched_channels_name_the_shapes():
    with pytest.raises(ValueError, match=r"x has 3 channels but w \[4, 2, 3, 3\]"):
        conv2d_resample(torch.zeros(1, 3, 8, 8), torch.zeros(4, 2, 3, 3))


def test_upfirdn_ref_is_what_the_definition_uses():
    """Sanity link: with a 1x1 identity kernel, up=2 is exactly upsample by upfirdn2d."""
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    f = setup_filter([1, 3, 3, 1]).double()
    got = conv2d_resample(x, torch.ones(1, 1, 1, 1, dtype=torch.float64), f, up=2, impl="ref")
    torch.testing.assert_close(got, upfirdn2d_ref(x, f, up=2, padding=[2, 1, 2, 1], gain=4))
