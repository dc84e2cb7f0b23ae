"""Inversion: references -> Styles (encoder passes, each beside the current reconstruction) -> Codes.

Images: one row of Codes per reference, all with the identity fused over every reference; each row's
pose and lighting frozen at that reference's, its background its own (or fused with
shared_background). A video: one row, identity and background fused over its frames, pose and
lighting fitted as trajectories over the frames' times, so it renders at any time like a sample.
`optimize` steps then refine the codes themselves against the references, within `seconds`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from stylevid.codes import Codes
from stylevid.encoder.model import Encoder, Styles, render_styles
from stylevid.encoder.trajectory import fit_trajectory

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # frames [M, 3, R, R] x2 -> [M]


@dataclass(frozen=True)
class Inversion:
    """What an inversion gave: the codes, the encoder's styles, the fusion weights [N, K], the
    trajectory fit's residual [N] per factor, and the seconds spent encoding and optimising."""

    codes: Codes
    styles: Styles
    weights: torch.Tensor
    fit_residual: dict[str, torch.Tensor]
    seconds: dict[str, float]


def pyramid_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error at full, half and quarter size [M]: the default distance of `optimize`."""
    total = 0
    for level in range(3):
        total = total + (a - b).square().mean(dim=(1, 2, 3))
        if level < 2:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return total / 3


def encode(
    encoder: Encoder,
    generator,
    frames: torch.Tensor,
    shared_background: bool = True,
    iterations: int | None = None,
) -> tuple[Styles, torch.Tensor]:
    """Styles of frames [N, K, 3, R, R] after `iterations` passes (the config's by default), and the
    last pass's fusion weights [N, K]."""
    iterations = encoder.config.iterations if iterations is None else iterations
    if iterations < 1:
        raise ValueError(f"iterations={iterations} must be at least 1")
    styles = encoder.initial_styles(frames, shared_background)
    recon = render_styles(generator, styles)
    weights = None
    for i in range(iterations):
        styles, aux = encoder.step(frames, recon, styles)
        weights = aux["weights"]
        if i + 1 < iterations:
            recon = render_styles(generator, styles)
    return styles, weights


def styles_to_codes(
    generator, styles: Styles, times: torch.Tensor | None, frames: int = 1, progress: bool = False
):
    """Codes of styles: times [N, K] (a video's frame times) fit trajectories; None: each of the K
    references of the N people becomes a row with its own still pose and lighting (N * K rows).
    progress: bars of the trajectory fits on stderr."""
    n, k, w = styles.pose.shape
    residual = {}
    trajectories = {}
    if times is None:
        identity, background, pose, lighting = styles.rows()
        per_frame = {"pose": pose, "lighting": lighting}
        zero = torch.zeros(n * k, 1, device=pose.device)
        for factor in ("pose", "lighting"):
            trajectories[factor], residual[factor] = fit_trajectory(
                generator, factor, per_frame[factor], zero, 1, frozen=True, progress=progress
            )
    else:
        if not styles.shared_background:
            raise ValueError("a video's frames share one background: invert it with shared_background=True")
        identity, background = styles.identity, styles.background
        for factor in ("pose", "lighting"):
            trajectories[factor], residual[factor] = fit_trajectory(
                generator, factor, getattr(styles, factor), times, frames, progress=progress
            )
    codes = Codes(identity.detach(), trajectories["pose"], trajectories["lighting"], background.detach())
    return codes, residual


def optimize_codes(
    generator,
    codes: Codes,
    targets: torch.Tensor,
    times: torch.Tensor,
    steps: int,
    seconds: float | None = None,
    distance: Distance | None = None,
    lr: float = 0.02,
    progress: bool = False,
) -> Codes:
    """Codes after up to `steps` Adam steps (or `seconds`) on distance(render(codes, times), targets);
    targets [N, T, 3, R, R]. Only codes move (identity and background W, trajectory z and anchors):
    never the generator, so nothing per person is stored but the codes. progress: a bar on stderr."""
    distance = distance or pyramid_l2
    w_scale = codes.identity.std().clamp_min(1e-3).item()
    leaves = {
        "identity": codes.identity.clone().requires_grad_(True),
        "background": codes.background.clone().requires_grad_(True),
        "pose_z": codes.pose.z.clone().requires_grad_(True),
        "pose_anchors": codes.pose.anchors.clone().requires_grad_(True),
        "lighting_z": codes.lighting.z.clone().requires_grad_(True),
        "lighting_anchors": codes.lighting.anchors.clone().requires_grad_(True),
    }
    groups = [
        {"params": [leaves["identity"], leaves["background"]], "lr": lr * w_scale},
        {"params": [v for k, v in leaves.items() if k not in ("identity", "background")], "lr": lr},
    ]
    optimizer = torch.optim.Adam(groups)
    deadline = None if seconds is None else time.monotonic() + seconds

    def current() -> Codes:
        return Codes(
            leaves["identity"],
            dataclasses.replace(codes.pose, z=leaves["pose_z"], anchors=leaves["pose_anchors"]),
            dataclasses.replace(codes.lighting, z=leaves["lighting_z"], anchors=leaves["lighting_anchors"]),
            leaves["background"],
        )

    with torch.enable_grad():
        for _ in tqdm(range(steps), desc="optimize", unit="step", disable=not progress):
            if deadline is not None and time.monotonic() > deadline:
                break
            optimizer.zero_grad(set_to_none=True)
            frames = generator(current(), times)
            loss = distance(frames.flatten(0, 1), targets.flatten(0, 1).to(frames.dtype)).mean()
            loss.backward()
            optimizer.step()
    for leaf in leaves.values():
        leaf.requires_grad_(False)
    return current()
