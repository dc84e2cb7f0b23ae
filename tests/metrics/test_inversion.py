"""The inversion metrics against naive loops and closed forms (metrics/inversion.py)."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stylevid.metrics.inversion import retrieval_top1, ridge_r2, stability_ratio, temporal_identity


def test_stability_ratio_is_within_person_distance_over_between_person_distance():
    rng = torch.Generator().manual_seed(0)
    codes = torch.randn(6, 1, 5, generator=rng) * 3 + 0.4 * torch.randn(6, 4, 5, generator=rng)
    within = np.mean(
        [
            float((codes[p, i] - codes[p, j]).norm())
            for p in range(6)
            for i, j in itertools.combinations(range(4), 2)
        ]
    )
    centres = codes.mean(1)
    between = np.mean(
        [float((centres[a] - centres[b]).norm()) for a, b in itertools.combinations(range(6), 2)]
    )
    assert stability_ratio(codes) == pytest.approx(within / between, rel=1e-5)
    exact = codes[:, :1].expand(-1, 4, -1)  # every clip of a person gives one code
    assert stability_ratio(exact) == 0


def test_retrieval_counts_queries_whose_nearest_gallery_code_is_their_own():
    gallery = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    queries = torch.tensor([[1.0, 0.0], [0.0, 8.0], [0.0, 9.0]])  # 0 right, 1 nearer to 2, 2 right
    assert retrieval_top1(gallery, queries) == pytest.approx(2 / 3)
    assert retrieval_top1(gallery, gallery) == 1


def test_ridge_r2_is_about_one_for_a_linear_target_and_zero_for_an_unrelated_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 10))
    linear = x @ rng.normal(size=(10, 3))
    assert ridge_r2(x, linear, alpha=1e-6) > 0.999
    unrelated = rng.normal(size=(2000, 3))
    assert abs(ridge_r2(x, unrelated)) < 0.02
    # Against least squares by numpy on the same split, with alpha -> 0.
    half = 1000
    noisy = linear + rng.normal(size=linear.shape)
    design = np.c_[x[:half], np.ones(half)]
    coef, *_ = np.linalg.lstsq(design, noisy[:half], rcond=None)
    pred = np.c_[x[half:], np.ones(half)] @ coef
    expected = 1 - ((noisy[half:] - pred) ** 2).sum() / ((noisy[half:] - noisy[half:].mean(0)) ** 2).sum()
    assert ridge_r2(x, noisy, alpha=1e-9) == pytest.approx(expected, abs=1e-6)


def _drifting(t: int, drift: float, seed: int) -> torch.Tensor:
    rng = torch.Generator().manual_seed(seed)
    start, end = torch.randn(2, 16, generator=rng)
    steps = torch.linspace(0, drift, t)[:, None]
    wobble = 0.05 * torch.randn(t, 16, generator=rng)
    return F.normalize(start + steps * (end - start) + wobble, dim=1)


def test_tl_and_tg_id_are_stit_ratios_of_mean_pair_similarities():
    source, edited = _drifting(12, 0.0, 1), _drifting(12, 0.8, 2)
    adjacent = lambda e: np.mean([float(e[i] @ e[i + 1]) for i in range(len(e) - 1)])  # noqa: E731
    every = lambda e: np.mean([float(e[i] @ e[j]) for i, j in itertools.combinations(range(len(e)), 2)])  # noqa: E731
    scores = temporal_identity(source, edited)
    assert scores["tl_id"] == pytest.approx(adjacent(edited) / adjacent(source), rel=1e-6)
    assert scores["tg_id"] == pytest.approx(every(edited) / every(source), rel=1e-6)


def test_a_video_against_itself_scores_one_and_a_drifting_identity_scores_less():
    source = _drifting(16, 0.0, 3)
    same = temporal_identity(source, source)
    assert same["tl_id"] == pytest.approx(1) and same["tg_id"] == pytest.approx(1)
    drifting = temporal_identity(source, _drifting(16, 1.0, 4))
    assert drifting["tg_id"] < 0.9 and drifting["tg_id"] < drifting["tl_id"]  # far pairs drift most
    with pytest.raises(ValueError, match="same length"):
        temporal_identity(source, source[:5])
