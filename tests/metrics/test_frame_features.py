"""frame_fd_vgg: VGG features of whole frames see the fine detail (eyes, mouth) that frame_fd16's 16x16
thumbnails average away; batching does not change them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylevid.data.synthetic.factors import sample_factors
from stylevid.data.synthetic.render import render_frame
from stylevid.metrics.frame_features import feature_fd, vgg_features
from stylevid.metrics.lpips import load_lpips
from stylevid.training.demo import thumbnail_fd, thumbnails


@pytest.fixture(scope="module")
def vgg():
    return load_lpips("vgg")


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    """160 frames of the synthetic renderer at 64², one per video (their first frame)."""
    frames = []
    for seed in range(160):
        f = sample_factors(seed, frames=1)
        frames.append(render_frame(f.identity, f.pose[0], f.lighting[0], f.background, 64))
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_vgg_sees_what_the_thumbnails_average_away(vgg, faces):
    """A 3x3 blur takes eyes, brows and lip lines off the faces. frame_fd_vgg of real against blurred is
    many times real against real (3.2x here); frame_fd16 hardly tells them apart (0.96x)."""
    a, b = faces[::2], faces[1::2]
    blurred = F.avg_pool2d(F.pad(b, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    fa, fb, fblur = (vgg_features(x, vgg) for x in (a, b, blurred))
    vgg_ratio = feature_fd(fa, fblur) / feature_fd(fa, fb)
    ta, tb, tblur = (thumbnails(x) for x in (a, b, blurred))
    thumb_ratio = thumbnail_fd(ta, tblur) / thumbnail_fd(ta, tb)
    assert vgg_ratio > 1.5 and thumb_ratio < 1.1, (vgg_ratio, thumb_ratio)


def test_features_do_not_depend_on_the_batch(vgg, faces):
    one = vgg_features(faces[:7], vgg, batch=64)
    pieces = vgg_features(faces[:7], vgg, batch=3)
    assert one.shape == (7, 512)
    np.testing.assert_allclose(pieces, one, rtol=1e-4, atol=1e-6)
    # The mean of unit vectors: at most 1 long.
    assert np.linalg.norm(one, axis=1).max() <= 1 + 1e-6


def test_small_frames_are_refused_with_the_fix(vgg):
    with pytest.raises(ValueError, match=r"\[2, 3, 16, 16\].*upsample"):
        vgg_features(torch.zeros(2, 3, 16, 16), vgg)
