"""The Fréchet distance against its closed forms, and feature statistics that ignore how rows are batched."""

import numpy as np
import pytest

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


def test_a_singular_product_gives_the_closed_form():
    # Rank 1 in 6 dimensions, as with fewer samples than features.
    v = np.arange(1.0, D + 1)
    cov = np.outer(v, v)
    value = frechet_distance(np.zeros(D), cov, np.zeros(D), 4 * cov)
    assert isinstance(value, float)
    assert value == pytest.approx(np.trace(cov) * (1 - 2) ** 2, rel=1e-6)


def test_the_features_of_a_collapsed_generator_against_the_nuclear_norm():
    """ReLU features of 512 dimensions, the second set from few distinct frames (a collapsed generator):
    scipy's sqrtm of the covariance product has an imaginary part of 0.004 here, which stopped a
    benchmark. Oracle: for centred features X, Y of n rows each, tr((cov1 cov2)^(1/2)) is the sum of the
    singular values of X Y^T over n - 1 (the nonzero eigenvalues of X^T X Y^T Y are those of
    (X Y^T)(X Y^T)^T), computed without either covariance."""
    rng = np.random.default_rng(9)
    d = 512
    rank_a, rank_b = rng.integers(5, 200, 2)
    a = np.maximum(rng.standard_normal((2048, rank_a)) @ rng.standard_normal((rank_a, d)), 0)
    a = a * rng.uniform(0, 3, d)
    b = np.maximum(rng.standard_normal((2048, rank_b)) @ rng.standard_normal((rank_b, d)), 0)
    b = (b * rng.uniform(0, 3, d))[rng.integers(0, rng.integers(3, 60), 2048)]
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    value = frechet_distance(a.mean(0), cov_a, b.mean(0), cov_b)
    centred_a, centred_b = a - a.mean(0), b - b.mean(0)
    nuclear = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum() / (len(a) - 1)
    diff = a.mean(0) - b.mean(0)
    expected = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * nuclear
    assert value == pytest.approx(expected, rel=1e-6)


def test_a_matrix_that_is_not_a_covariance_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"cov1 has a negative eigenvalue -4"):
        frechet_distance(np.zeros(2), np.diag([1.0, -4.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match=r"cov2 is not symmetric"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"cov2 holds NaN"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.nan))


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
