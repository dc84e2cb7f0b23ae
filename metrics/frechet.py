"""Fréchet distance between Gaussians fitted to features, and the running statistics it is computed from."""

from __future__ import annotations

import numpy as np
import torch

# A covariance's rounding leaves negative eigenvalues and asymmetry of this size (relative to its largest)
# at most; beyond it the matrix is not a covariance.
PSD_TOLERANCE = 1e-9


class FeatureStats:
    """Running float64 mean and covariance of feature rows [N, D]; any batching gives the same result."""

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self._mean = np.zeros(dim)
        self._scatter = np.zeros((dim, dim))  # sum of (x - mean)(x - mean)^T over the rows so far

    def append(self, features: torch.Tensor | np.ndarray) -> None:
        """Add feature rows [B, D]."""
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"features have shape {list(features.shape)}; expected [B, {self.dim}]")
        if not np.isfinite(features).all():
            raise ValueError("features hold NaN or infinite values; check the network's input and weights")
        if len(features):
            batch = FeatureStats(self.dim)
            batch.count = len(features)
            batch._mean = features.mean(axis=0)
            centred = features - batch._mean
            batch._scatter = centred.T @ centred
            self.merge(batch)

    def merge(self, other: FeatureStats) -> None:
        """Add the rows `other` has seen (Chan et al.'s pairwise update: exact, whatever the split)."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of {other.dim}-d features into {self.dim}-d ones")
        total = self.count + other.count
        if other.count == 0:
            return
        delta = other._mean - self._mean
        self._scatter = (
            self._scatter + other._scatter + np.outer(delta, delta) * (self.count * other.count / total)
        )
        self._mean = self._mean + delta * (other.count / total)
        self.count = total

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean [D] and covariance [D, D] (divided by N, as StyleGAN-V's FVD does), float64."""
        if self.count == 0:
            raise ValueError("no features were added; append some before asking for their statistics")
        return self._mean.copy(), self._scatter / self.count


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)): Fréchet distance of two Gaussians, >= 0.

    The root's trace is taken in the symmetric form tr((cov1^(1/2) cov2 cov1^(1/2))^(1/2)), the same
    value for covariances: the sum of the square roots of a positive semi-definite matrix's eigenvalues,
    which `eigh` finds reliably however singular it is. `sqrtm` of the product itself (pytorch-fid's and
    StyleGAN's way) is not symmetric; for the features of a collapsed generator (few distinct frames)
    its root came out with imaginary parts of 0.004 and stopped a benchmark.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(
            f"shapes mu1 {list(mu1.shape)}, cov1 {list(cov1.shape)}, mu2 {list(mu2.shape)}, cov2"
            f" {list(cov2.shape)} do not match: expected [D], [D, D] for the same D"
        )
    values, vectors = _covariance_eigen(cov1, "cov1")
    _covariance_eigen(cov2, "cov2")  # checked alike
    root1 = (vectors * np.sqrt(values.clip(min=0))) @ vectors.T
    middle = root1 @ cov2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2).clip(min=0)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.sqrt(eigenvalues).sum())


def _covariance_eigen(cov: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Ascending eigenvalues and eigenvectors of a covariance [D, D]; a ValueError naming it if not one."""
    if not np.isfinite(cov).all():
        raise ValueError(f"{name} holds NaN or infinite values; check the features it was computed from")
    scale = max(np.abs(cov).max(), np.finfo(np.float64).tiny)
    asymmetry = np.abs(cov - cov.T).max() / scale
    if asymmetry > PSD_TOLERANCE:
        raise ValueError(
            f"{name} is not symmetric (relative asymmetry {asymmetry:.3g}): it is not a covariance"
        )
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    if values[0] < -PSD_TOLERANCE * max(values[-1], 0):
        raise ValueError(
            f"{name} has a negative eigenvalue {values[0]:.3g} (largest {values[-1]:.3g}): it is not"
            " positive semi-definite, so not a covariance of real features"
        )
    return values, vectors
