"""Per-frame pose or lighting styles turned into the generator's own trajectory codes.

The encoder reads a style per frame; a Trajectory (motion code z and anchors along time) is what
renders at any time and frame rate. The codes are found by gradient descent through the generator's
frozen motion mapping so that it gives the read styles at the frames' times: a few hundred steps on
a small MLP, no image is rendered.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from stylevid.codes import Trajectory

FIT_STEPS = 300
FIT_LR = 0.05


def fit_trajectory(
    generator,
    factor: str,
    styles: torch.Tensor,
    t: torch.Tensor,
    frames: int,
    frozen: bool = False,
    steps: int = FIT_STEPS,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Trajectory, torch.Tensor]:
    """A Trajectory of N videos covering `frames` frames whose styles at times t [N, T] are `styles`
    [N, T, W] (as near as the mapping reaches); frozen: a still at t[:, 0]. Also the residual per video
    (mean squared style error, in W units). progress: a bar of the steps on stderr."""
    n = styles.shape[0]
    mapping = getattr(generator, factor)
    c = generator.config
    device = styles.device
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c.z_dim, generator=rng).to(device).requires_grad_(True)
    anchors = torch.randn(n, generator.anchors_for(frames), c.motion_dim, generator=rng)
    anchors = anchors.to(device).requires_grad_(True)
    target = styles.detach().float()
    optimizer = torch.optim.Adam([z, anchors], lr=FIT_LR)
    with torch.enable_grad():
        for _ in tqdm(range(steps), desc=f"fit {factor}", unit="step", leave=False, disable=not progress):
            optimizer.zero_grad(set_to_none=True)
            loss = (mapping(z, anchors, t) - target).square().mean()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        residual = (mapping(z, anchors, t) - target).square().mean(dim=(1, 2))
    frozen_at = t[:, 0].float() if frozen else torch.full([n], float("nan"), device=device)
    trajectory = Trajectory(
        z.detach(), anchors.detach(), c.anchor_spacing, torch.ones(n, device=device), frozen_at.to(device)
    )
    return trajectory, residual
