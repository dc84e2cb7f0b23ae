"""Adaptive augmentation for clips: one random draw per clip, applied identically to all its K frames."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment_clips(
    clips: torch.Tensor, p: float, generator: torch.Generator, rows: slice | None = None
) -> torch.Tensor:
    """Augment clips [N, K, 3, H, W] in [-1, 1]: flip, translation, brightness, contrast, saturation.

    Each transform is applied to a clip with probability p. Draws are made for the whole global
    batch and `rows` selects this process's clips, so a batch split over processes is augmented
    exactly as it would be in one. Differentiable (G and R1 backpropagate through it).
    """
    if p <= 0:
        return clips
    n_local, k, c, h, w = clips.shape
    rows = rows or slice(0, n_local)
    total = rows.stop

    def draw(shape=()):
        return torch.rand((total, *shape), generator=generator)[rows].to(clips.device)

    def gate():
        return (draw() < p).to(clips.dtype)

    flip, shift_on = gate(), gate()
    shift = ((draw((2,)) * 2 - 1) * 0.125 * torch.tensor([h, w])).round().long()
    bright, contrast, sat = gate(), gate(), gate()
    bright_v = torch.randn((total,), generator=generator)[rows].to(clips.device) * 0.2
    contrast_v = torch.exp2(torch.randn((total,), generator=generator)[rows].to(clips.device) * 0.5)
    sat_v = torch.exp2(torch.randn((total,), generator=generator)[rows].to(clips.device))

    view = (-1, 1, 1, 1, 1)
    x = torch.lerp(clips, clips.flip(-1), flip.view(view))
    x = torch.stack([_translate(x[i], *shift[i].tolist()) if shift_on[i] else x[i] for i in range(n_local)])
    x = x + (bright * bright_v).view(view)
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    x = mean + (x - mean) * torch.lerp(torch.ones_like(contrast_v), contrast_v, contrast).view(view)
    gray = x.mean(dim=2, keepdim=True)
    return gray + (x - gray) * torch.lerp(torch.ones_like(sat_v), sat_v, sat).view(view)


def _translate(clip: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift [K, 3, H, W] by whole pixels, filling with the reflected image."""
    if dy == 0 and dx == 0:
        return clip
    h, w = clip.shape[-2:]
    pad = [abs(dx), abs(dx), abs(dy), abs(dy)]
    padded = F.pad(clip, pad, mode="reflect")
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[..., top : top + h, left : left + w]


class AdaptiveProbability:
    """ADA's controller: raise p while E[sign D(real)] is above the target (D overfits), else lower it."""

    def __init__(self, target: float, speed_kimg: float, batch: int, interval: int, p: float = 0.0):
        self.target, self.p = target, p
        self.step_size = batch * interval / (speed_kimg * 1000)
        self._signs, self._count = 0.0, 0

    def observe(self, sign_sum: float, count: int) -> None:
        """Accumulate the sum of sign(D(real)) over `count` clips (summed over all processes)."""
        self._signs += sign_sum
        self._count += count

    def update(self) -> float:
        """Move p by one step toward balance; returns the measured E[sign D(real)]."""
        if self._count == 0:
            return math.nan
        rt = self._signs / self._count
        self.p = min(max(self.p + math.copysign(self.step_size, rt - self.target), 0.0), 1.0)
        self._signs, self._count = 0.0, 0
        return rt
