"""The leakage matrix: exact answers for generators of known entanglement, a naive-loop oracle, the plot."""

import math
import re

import numpy as np
import pytest
import torch

from stylevid.config import FACTORS
from stylevid.metrics.leakage import leakage_matrix, plot_leakage, rms_distance


class MixingGenerator:
    """Frames whose four top-left pixels are mixing @ (one number per latent): entanglement by design."""

    def __init__(self, video_generator, mixing):
        self.inner = video_generator
        self.mixing = torch.as_tensor(mixing, dtype=torch.float32)

    def sample(self, n, seed, frames):
        return self.inner.sample(n, seed=seed, frames=frames)

    def latents(self, codes, t):
        """[N, T, 4]: identity, pose (moving with t), lighting, background, one number each."""
        n, steps = len(codes), len(t)
        return torch.stack(
            [
                codes.identity[:, 0, None].expand(n, steps),
                codes.pose.anchors[:, 0, :1] + 0.05 * t * codes.pose.anchors[:, 1, :1],
                codes.lighting.anchors[:, 0, :1].expand(n, steps),
                codes.background[:, 0, None].expand(n, steps),
            ],
            dim=-1,
        )

    def render(self, codes, t):
        slots = self.latents(codes, t) @ self.mixing.T
        frames = torch.zeros(len(codes), len(t), 3, 2, 2)
        frames[:, :, 0] = slots.reshape(len(codes), len(t), 2, 2)
        return frames


class PixelReadout:
    """Factor g is top-left pixel g, compared by absolute difference."""

    weights_sha256 = {}

    def __call__(self, frames):
        slots = frames[:, 0].flatten(1)
        return {f: slots[:, i : i + 1] for i, f in enumerate(FACTORS)}

    def distance(self, factor, a, b):
        return rms_distance(a, b)


def _leakage(video_generator, mixing, **kwargs):
    settings = dict(videos=6, frames=3, batch=4, progress=False) | kwargs
    return leakage_matrix(MixingGenerator(video_generator, mixing), PixelReadout(), **settings)


def test_disentangled_generator_gives_the_identity_matrix(video_generator):
    result = _leakage(video_generator, np.eye(4))
    np.testing.assert_allclose(result["share"], np.eye(4), atol=1e-6)
    np.testing.assert_allclose(result["effect"], np.eye(4), atol=1e-6)
    assert result["raw_leakage"] == pytest.approx(0, abs=1e-6)
    assert result["control"] == pytest.approx(1, abs=1e-6)


def test_swapped_readings_leak_completely(video_generator):
    permutation = np.eye(4)[[1, 0, 3, 2]]
    result = _leakage(video_generator, permutation)
    np.testing.assert_allclose(result["share"], permutation, atol=1e-6)
    assert result["raw_leakage"] == pytest.approx(1, abs=1e-6)


def test_every_latent_in_every_factor_spreads_evenly(video_generator):
    result = _leakage(video_generator, np.ones((4, 4)))
    np.testing.assert_allclose(result["share"], np.full((4, 4), 0.25), atol=1e-6)
    assert result["raw_leakage"] == pytest.approx(0.75, abs=1e-6)
    assert result["leakage"] is None and result["floor"] is None  # no floor: nothing normalised


def test_a_latent_that_moves_nothing_gives_a_nan_row(video_generator):
    mixing = np.eye(4)
    mixing[2, 2] = 0  # lighting is ignored
    result = _leakage(video_generator, mixing)
    assert result["share"][2] == [None] * 4  # JSON-safe NaN
    assert math.isnan(result["raw_leakage"])


def test_matches_a_naive_loop(video_generator):
    mixing = np.random.default_rng(3).normal(size=(4, 4))
    videos, frames, step, seed = 7, 3, 4, 5
    result = _leakage(video_generator, mixing, videos=videos, frames=frames, step=step, seed=seed, batch=3)
    gen = MixingGenerator(video_generator, mixing)
    t = torch.arange(frames, dtype=torch.float32) * step
    codes = gen.sample(2 * videos, seed, int(t[-1]) + 1)
    moved = np.zeros((5, 4))
    for v in range(videos):
        base, other = codes[v], codes[videos + v]
        changed = [base.with_factor(f, other) for f in FACTORS] + [other]
        for i, variant in enumerate(changed):
            for k in range(frames):
                for g in range(4):
                    a = gen.render(base, t)[0, k, 0].flatten()[g]
                    b = gen.render(variant, t)[0, k, 0].flatten()[g]
                    moved[i, g] += abs(float(a - b)) / (videos * frames)
    np.testing.assert_allclose(result["moved"], moved[:4], rtol=1e-5)
    np.testing.assert_allclose(result["reference"], moved[4], rtol=1e-5)
    effect = moved[:4] / moved[4]
    np.testing.assert_allclose(result["effect"], effect, rtol=1e-5)
    np.testing.assert_allclose(result["share"], effect / effect.sum(1, keepdims=True), rtol=1e-5)


def test_unmeasurable_frames_are_left_out_and_counted(video_generator):
    class HalfBlind(PixelReadout):
        def __call__(self, frames):
            features = super().__call__(frames)
            features["pose"] = features["pose"].clone()
            features["pose"][::2] = math.nan  # every other frame has no pose reading
            return features

    gen = MixingGenerator(video_generator, np.eye(4))
    result = leakage_matrix(gen, HalfBlind(), videos=4, frames=2, batch=4, progress=False)
    assert result["measured"] == [1.0, 0.5, 1.0, 1.0]
    np.testing.assert_allclose(result["share"], np.eye(4), atol=1e-6)


def test_bad_sizes_are_refused(video_generator):
    with pytest.raises(ValueError, match="videos=0"):
        _leakage(video_generator, np.eye(4), videos=0)


def test_heatmap_is_written(video_generator, tmp_path):
    result = _leakage(video_generator, np.eye(4))
    path = plot_leakage(result, tmp_path / "leakage.png")
    from PIL import Image

    image = np.asarray(Image.open(path))
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert image[..., :3].std() > 10  # a picture, not a blank canvas


def test_the_heatmap_names_an_unnormalised_leakage_raw(video_generator, tmp_path, heatmap_titles):
    result = _leakage(video_generator, np.ones((4, 4)))  # no floor, as on real faces: the raw value only
    plot_leakage(result, tmp_path / "leakage.png")
    (title,) = heatmap_titles
    assert re.findall(r"(raw )?leakage (\d+\.\d+)", title) == [("raw ", "0.750")], title


def _naive_bootstrap(video_generator, mixing, resamples, seed, floor):
    """The bootstrap by hand: per video distances, videos redrawn, every matrix recomputed in loops."""
    gen, readout = MixingGenerator(video_generator, mixing), PixelReadout()
    videos, frames = 6, 3
    times = torch.arange(frames, dtype=torch.float32) * 4
    codes = gen.sample(2 * videos, seed=seed, frames=9)
    base, other = codes[:videos], codes[videos:]
    read = {
        name: readout(gen.render(c, times).flatten(0, 1))
        for name, c in {
            "base": base,
            **{f: base.with_factor(f, other) for f in FACTORS},
            "all": other,
        }.items()
    }
    per_video = {}
    for change in (*FACTORS, "all"):
        for g in FACTORS:
            d = (read["base"][g] - read[change][g]).abs()[:, 0].reshape(videos, frames)
            per_video[change, g] = d.double().sum(1).numpy()
    rng = np.random.default_rng([seed, 95])
    draws = rng.integers(videos, size=(resamples, videos))
    values = []
    for draw in draws:
        mean = {key: v[draw].sum() / (frames * videos) for key, v in per_video.items()}
        effect = [[mean[f, g] / mean["all", g] for g in FACTORS] for f in FACTORS]
        diag = [effect[i][i] / sum(effect[i]) for i in range(4)]
        leakage = 1 - sum(diag) / 4
        values.append((leakage - floor) / (0.75 - floor))
    return np.percentile(values, [2.5, 97.5])


def test_bootstrap_interval_and_normalisation_match_a_naive_loop(video_generator):
    gen = torch.Generator().manual_seed(3)
    mixing = torch.eye(4) + 0.3 * torch.rand(4, 4, generator=gen)
    result = _leakage(video_generator, mixing, floor=0.3, bootstrap=200)
    assert result["leakage"] == pytest.approx((result["raw_leakage"] - 0.3) / 0.45)
    low, high = result["interval"]["leakage"]
    assert low < result["leakage"] < high
    expected = _naive_bootstrap(video_generator, mixing, 200, 0, 0.3)
    assert [low, high] == pytest.approx(list(expected), abs=1e-9)
    per_factor = result["control_per_factor"]
    assert list(per_factor) == list(FACTORS)
    assert np.mean(list(per_factor.values())) == pytest.approx(result["control"])


def test_a_disentangled_generator_has_a_collapsed_interval_and_bad_floors_are_refused(video_generator):
    result = _leakage(video_generator, torch.eye(4), floor=0.0, bootstrap=100)
    assert result["interval"]["raw_leakage"] == pytest.approx([0, 0], abs=1e-9)
    assert result["leakage"] == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="floor=0.8"):
        _leakage(video_generator, torch.eye(4), floor=0.8)
