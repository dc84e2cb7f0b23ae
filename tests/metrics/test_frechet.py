"""The Fréchet distance against its closed forms, and feature statistics that ignore how rows are batched."""

import numpy as np
import pytest
import scipy.linalg

from stylevid.metrics import frechet
from stylevid.metrics.frechet import FeatureStats, frechet_distance

D = 6


def random_cov(seed: int, dim: int = D) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


def test_identical_gaussians_are_at_zero():
    mu, cov = np.arange(D, dtype=float), random_cov(0)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-9)


def test_mean_shift_alone_gives_the_squared_distance_of_the_means():
    cov = random_cov(1)
    mu1, mu2 = np.zeros(D), np.random.default_rng(2).standard_normal(D)
    assert frechet_distance(mu1, cov, mu2, cov) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)


@pytest.mark.parametrize("s", [0.5, 2.0, 3.7])
def test_scaled_covariance_gives_trace_times_one_minus_s_squared(s):
    # sqrt(cov s^2 cov) = s cov, so tr(cov + s^2 cov - 2 s cov) = tr(cov) (1 - s)^2.
    mu, cov = np.ones(D), random_cov(3)
    expected = np.trace(cov) * (1 - s) ** 2
    assert frechet_distance(mu, cov, mu, s**2 * cov) == pytest.approx(expected, rel=1e-9)


def test_diagonal_covariances_follow_the_one_dimensional_formula():
    rng = np.random.default_rng(4)
    mu1, mu2 = rng.standard_normal(D), rng.standard_normal(D)
    sd1, sd2 = rng.uniform(0.1, 2, D), rng.uniform(0.1, 2, D)
    expected = sum((m1 - m2) ** 2 + (s1 - s2) ** 2 for m1, m2, s1, s2 in zip(mu1, mu2, sd1, sd2, strict=True))
    assert frechet_distance(mu1, np.diag(sd1**2), mu2, np.diag(sd2**2)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_a_small_imaginary_part_of_a_singular_product_is_dropped():
    # Rank 1 in 6 dimensions, as with fewer samples than features: sqrtm's root has a ~1e-6 imaginary part.
    v = np.arange(1.0, D + 1)
    cov = np.outer(v, v)
    value = frechet_distance(np.zeros(D), cov, np.zeros(D), 4 * cov)
    assert isinstance(value, float)
    assert value == pytest.approx(np.trace(cov) * (1 - 2) ** 2, rel=1e-6)


def test_a_large_imaginary_part_is_an_error_naming_it():
    # cov1 is not positive semi-definite, so sqrt(diag(1, -4)) = diag(1, 2i).
    with pytest.raises(ValueError, match=r"2x2 covariance product has an imaginary part of 2"):
        frechet_distance(np.zeros(2), np.diag([1.0, -4.0]), np.zeros(2), np.eye(2))


def test_a_non_finite_root_is_retried_with_a_ridge(monkeypatch):
    calls, real_sqrtm = [], scipy.linalg.sqrtm

    def sqrtm(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(frechet.scipy.linalg, "sqrtm", sqrtm)
    cov1, cov2 = random_cov(7), random_cov(8)
    value = frechet_distance(np.zeros(D), cov1, np.zeros(D), cov2, eps=1e-3)
    ridge = 1e-3 * np.eye(D)
    np.testing.assert_allclose(calls[1], (cov1 + ridge) @ (cov2 + ridge))
    root = real_sqrtm((cov1 + ridge) @ (cov2 + ridge)).real
    assert value == pytest.approx(np.trace(cov1 + cov2 - 2 * root), rel=1e-9)


def test_shapes_that_disagree_are_named():
    with pytest.raises(ValueError, match=r"mu2 \[5\]"):
        frechet_distance(np.zeros(D), np.eye(D), np.zeros(5), np.eye(D))


@pytest.mark.parametrize("batch", [1, 7, 100])
def test_statistics_do_not_depend_on_the_batch_size(batch):
    rows = np.random.default_rng(5).standard_normal((100, D)) * 3 + 10
    stats = FeatureStats(D)
    for start in range(0, len(rows), batch):
        stats.append(rows[start : start + batch])
    mu, cov = stats.mean_cov()
    assert stats.count == 100
    np.testing.assert_allclose(mu, rows.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(rows, rowvar=False, bias=True), rtol=0, atol=1e-12)


def test_merged_statistics_equal_those_of_all_rows():
    rows = np.random.default_rng(6).standard_normal((50, D))
    left, right, both = FeatureStats(D), FeatureStats(D), FeatureStats(D)
    left.append(rows[:13])
    right.append(rows[13:])
    both.append(rows)
    left.merge(right)
    for a, b in zip(left.mean_cov(), both.mean_cov(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_bad_features_are_refused():
    stats = FeatureStats(D)
    with pytest.raises(ValueError, match=r"\[3, 4\]"):
        stats.append(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        stats.append(np.full((2, D), np.nan))
    with pytest.raises(ValueError, match="no features"):
        stats.mean_cov()
