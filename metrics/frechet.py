"""Fréchet distance between Gaussians fitted to features, and the running statistics it is computed from."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

# sqrtm of a product of two PSD matrices is real in exact arithmetic; rounding leaves imaginary parts
# of this size at most (the bound pytorch-fid and StyleGAN use).
IMAGINARY_TOLERANCE = 1e-3


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


def frechet_distance(
    mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)): Fréchet distance of two Gaussians, >= 0."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(
            f"shapes mu1 {list(mu1.shape)}, cov1 {list(cov1.shape)}, mu2 {list(mu2.shape)}, cov2"
            f" {list(cov2.shape)} do not match: expected [D], [D, D] for the same D"
        )
    root = scipy.linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(root).all():
        # A singular product (fewer samples than dimensions) can defeat sqrtm; a small ridge on both
        # covariances makes it regular, as pytorch-fid does.
        ridge = eps * np.eye(d)
        root = scipy.linalg.sqrtm((cov1 + ridge) @ (cov2 + ridge))
    if np.iscomplexobj(root):
        imaginary = np.abs(root.imag).max()
        if imaginary > IMAGINARY_TOLERANCE:
            raise ValueError(
                f"the square root of the {d}x{d} covariance product has an imaginary part of {imaginary:.3g}"
                f" (> {IMAGINARY_TOLERANCE}): the covariances are not positive semi-definite, or too few"
                " samples for the dimension; use more samples"
            )
        root = root.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root))
