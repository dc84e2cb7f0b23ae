"""Mapping networks: one per factor, each with its own tracked mean so truncation is per factor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stylevid.networks.layers import FullyConnected, full_precision, normalize_2nd_moment
from stylevid.shapes import assert_shape


class Mapping(nn.Module):
    """MLP x [..., in_dim] -> w [..., w_dim]; `w_avg` follows the mean w seen in training."""

    def __init__(self, in_dim, w_dim, layers, lr_multiplier=0.01, w_avg_beta=0.995, normalize_input=True):
        super().__init__()
        self.in_dim, self.w_dim, self.w_avg_beta, self.normalize_input = (
            in_dim,
            w_dim,
            w_avg_beta,
            normalize_input,
        )
        dims = [in_dim] + [w_dim] * layers
        self.layers = nn.ModuleList(
            FullyConnected(a, b, activation="lrelu", lr_multiplier=lr_multiplier)
            for a, b in zip(dims, dims[1:], strict=False)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"mapping input has shape {list(x.shape)}, expected [..., {self.in_dim}]")
        # float32 even under mixed precision, as in StyleGAN2: with a 0.01 learning-rate multiplier,
        # bfloat16's 8-bit mantissa would round away most of each update to w.
        with full_precision(x.device):
            x = x.float()
            if self.normalize_input:
                x = normalize_2nd_moment(x)
            for layer in self.layers:
                x = layer(x)
        return x

    @torch.no_grad()
    def track_mean(self, mean: torch.Tensor) -> None:
        """Move w_avg toward the mean w [w_dim] of a training batch (the trainer sums it over processes)."""
        self.w_avg.copy_(mean.float().lerp(self.w_avg, self.w_avg_beta))

    def truncate(self, w: torch.Tensor, psi: torch.Tensor | float) -> torch.Tensor:
        """Pull w [N, ..., w_dim] toward w_avg: psi 1 keeps w, 0 gives the mean; psi scalar or [N]."""
        if not torch.is_tensor(psi):  # a number: no tensor is made (and uploaded) on the device
            return self.w_avg.to(w.dtype).lerp(w, float(psi))
        psi = psi.to(device=w.device, dtype=w.dtype, non_blocking=True)
        if psi.ndim == 1:
            psi = psi.reshape(-1, *[1] * (w.ndim - 1))
        return self.w_avg.to(w.dtype).lerp(w, psi)


def catmull_rom(points: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Interpolate points [N, K, D] at real positions [N, T] in [0, K-1]: C¹-smooth, exact at integers."""
    k = points.shape[1]
    base = position.floor().clamp(0, k - 2)
    u = (position - base)[..., None]
    base = base.long()

    def at(offset):
        index = (base + offset).clamp(0, k - 1)
        return torch.gather(points, 1, index[..., None].expand(-1, -1, points.shape[2]))

    p0, p1, p2, p3 = at(-1), at(0), at(1), at(2)
    return 0.5 * (
        2 * p1 + (p2 - p0) * u + (2 * p0 - 5 * p1 + 4 * p2 - p3) * u**2 + (3 * p1 - p0 - 3 * p2 + p3) * u**3
    )


class MotionMapping(nn.Module):
    """Style of a trajectory: z [N, z_dim], anchors [N, K, motion_dim], times [N, T] -> w [N, T, w_dim].

    Anchor codes are smoothed by a learned 3-tap filter along time and interpolated (Catmull-Rom)
    at t / spacing; a sinusoidal time encoding, phased per video by z, adds motion finer than the
    anchor spacing. The mapping MLP sees [z, interpolated anchor, encoding].
    """

    def __init__(self, z_dim, motion_dim, w_dim, layers, spacing, time_freqs):
        super().__init__()
        self.z_dim, self.motion_dim, self.spacing = z_dim, motion_dim, float(spacing)
        self.smooth = nn.Parameter(torch.randn(motion_dim, motion_dim, 3))
        self.smooth_gain = 1 / math.sqrt(3 * motion_dim)
        self.phase = FullyConnected(z_dim, time_freqs)
        # Periods from half the anchor spacing to 32 spacings, in frames.
        periods = self.spacing * torch.logspace(-1, 5, time_freqs, base=2.0)
        self.register_buffer("angular_freqs", 2 * math.pi / periods, persistent=False)
        self.mapping = Mapping(z_dim + motion_dim + 2 * time_freqs, w_dim, layers, normalize_input=False)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z, anchors, t) -> torch.Tensor:
        # float32 under mixed precision: times reach thousands of frames, where bfloat16 cannot
        # tell one frame from the next, and the mapping keeps float32 as above.
        with full_precision(z.device):
            return self._styles(z.float(), anchors.float(), t.float())

    def _styles(self, z, anchors, t) -> torch.Tensor:
        n = z.shape[0]
        assert_shape(z, [n, self.z_dim], "trajectory z")
        assert_shape(anchors, [n, None, self.motion_dim], "trajectory anchors")
        assert_shape(t, [n, None], "times")
        # Times outside the anchors are refused at the API's entry (VideoGenerator), not here: a check
        # here would read t on the host in every training step.
        smooth = F.conv1d(
            F.pad(anchors.transpose(1, 2), [1, 1], mode="replicate"),
            self.smooth.to(anchors.dtype) * self.smooth_gain,
        ).transpose(1, 2)
        motion = catmull_rom(normalize_2nd_moment(smooth), t / self.spacing)
        angle = t[..., None] * self.angular_freqs + self.phase(z)[:, None, :]
        encoding = torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)
        static = normalize_2nd_moment(z)[:, None, :].expand(-1, t.shape[1], -1)
        return self.mapping(torch.cat([static, normalize_2nd_moment(motion), encoding], dim=-1))

    def truncate(self, w, psi):
        return self.mapping.truncate(w, psi)

    def track_mean(self, mean: torch.Tensor) -> None:
        self.mapping.track_mean(mean)
