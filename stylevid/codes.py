"""The four latents of a batch of videos, and the edits made on them: swap, replace, interpolate, freeze.

identity and background are W-space vectors, one per video, so interpolating them is linear in W.
pose and lighting are trajectories: a per-video motion code plus anchor codes along time (both
Gaussian, so they are interpolated spherically), turned into a W vector at any time t by the
generator's motion mappings.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from stylevid.config import FACTORS, TRAJECTORY_FACTORS, VECTOR_FACTORS


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation along the last dim; exact at alpha 0 and 1, linear when a ∥ b."""
    a_norm, b_norm = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    cos = ((a * b).sum(dim=-1, keepdim=True) / (a_norm * b_norm).clamp_min(1e-12)).clamp(-1, 1)
    omega = torch.acos(cos)
    sin = torch.sin(omega)
    parallel = sin.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    wa = torch.where(parallel, torch.full_like(sin, 1 - alpha), torch.sin((1 - alpha) * omega) / safe)
    wb = torch.where(parallel, torch.full_like(sin, alpha), torch.sin(alpha * omega) / safe)
    return wa * a + wb * b


def _shape(name: str, tensor: torch.Tensor) -> str:
    return f"{name} {list(tensor.shape)}"


def _where(tensor: torch.Tensor) -> str:
    return f"{str(tensor.dtype).removeprefix('torch.')} on {tensor.device}"


@dataclass(frozen=True, repr=False)
class Trajectory:
    """A motion over time for N videos: z [N, z_dim], anchors [N, K, motion_dim] spaced `spacing` frames.

    psi [N]: truncation toward the mapping's mean; frozen_at [N]: the time every frame shows (a
    still pose or a fixed light), NaN where the trajectory moves.
    """

    z: torch.Tensor
    anchors: torch.Tensor
    spacing: float
    psi: torch.Tensor
    frozen_at: torch.Tensor

    def __post_init__(self) -> None:
        n = self.z.shape[0]
        if self.anchors.ndim != 3 or self.anchors.shape[0] != n or self.anchors.shape[1] < 2:
            raise ValueError(f"anchors of shape {list(self.anchors.shape)} must be [N={n}, K>=2, motion_dim]")
        if self.psi.shape != (n,) or self.frozen_at.shape != (n,):
            raise ValueError(
                f"psi {list(self.psi.shape)} and frozen_at {list(self.frozen_at.shape)} must be [N={n}]"
            )

    def __len__(self) -> int:
        return self.z.shape[0]

    def __repr__(self) -> str:
        return (
            f"Trajectory(N={len(self)}, {_shape('z', self.z)}, {_shape('anchors', self.anchors)} every"
            f" {self.spacing:g} frames (0..{self.duration:g}), {_range('psi', self.psi)},"
            f" {self._frozen()}, {_where(self.z)})"
        )

    def _frozen(self) -> str:
        frozen = self.frozen_at[~torch.isnan(self.frozen_at)]
        if not frozen.numel():
            return "moving"
        if frozen.numel() < len(self):
            return f"{frozen.numel()} of {len(self)} frozen"
        return f"all frozen at {_range('t', frozen, '=')}"

    @property
    def duration(self) -> float:
        """The last time (in frames) the anchors cover."""
        return (self.anchors.shape[1] - 1) * self.spacing

    def __getitem__(self, index) -> Trajectory:
        index = _as_index(index, len(self))
        return dataclasses.replace(
            self,
            z=self.z[index],
            anchors=self.anchors[index],
            psi=self.psi[index],
            frozen_at=self.frozen_at[index],
        )

    def freeze(self, t: float | None) -> Trajectory:
        """Every frame shows the motion at time t (None: move again)."""
        value = float("nan") if t is None else float(t)
        return dataclasses.replace(self, frozen_at=torch.full_like(self.frozen_at, value))

    def times(self, t: torch.Tensor) -> torch.Tensor:
        """t [N, T] with frozen videos' rows replaced by their frozen time."""
        frozen = ~torch.isnan(self.frozen_at)
        return torch.where(frozen[:, None], self.frozen_at[:, None].to(t.dtype), t)

    def to(self, device) -> Trajectory:
        return Trajectory(
            self.z.to(device),
            self.anchors.to(device),
            self.spacing,
            self.psi.to(device),
            self.frozen_at.to(device),
        )

    @staticmethod
    def cat(items: Sequence[Trajectory]) -> Trajectory:
        """Concatenate along videos; anchors are cut to the shortest coverage."""
        k = min(item.anchors.shape[1] for item in items)
        _same_spacing(items)
        return Trajectory(
            torch.cat([i.z for i in items]),
            torch.cat([i.anchors[:, :k] for i in items]),
            items[0].spacing,
            torch.cat([i.psi for i in items]),
            torch.cat([i.frozen_at for i in items]),
        )

    @staticmethod
    def interpolate(a: Trajectory, b: Trajectory, alpha: float) -> Trajectory:
        """Slerp of the Gaussian codes; psi linear; frozen time from the nearer end."""
        _same_spacing([a, b])
        k = min(a.anchors.shape[1], b.anchors.shape[1])
        return Trajectory(
            slerp(a.z, b.z, alpha),
            slerp(a.anchors[:, :k], b.anchors[:, :k], alpha),
            a.spacing,
            torch.lerp(a.psi, b.psi, alpha),
            a.frozen_at if alpha < 0.5 else b.frozen_at,
        )


def _range(name: str, values: torch.Tensor, sep: str = " ") -> str:
    """'psi 1' when every value is one number, else 'psi 0.5..1'."""
    if not values.numel():
        return f"{name}{sep}-"
    low, high = values.min().item(), values.max().item()
    return f"{name}{sep}{low:g}" if low == high else f"{name}{sep}{low:g}..{high:g}"


def _same_spacing(items: Sequence[Trajectory]) -> None:
    spacings = {item.spacing for item in items}
    if len(spacings) > 1:
        raise ValueError(f"trajectories with different anchor spacings {sorted(spacings)} cannot be combined")


def _as_index(index, n: int):
    """A tensor index over `n` videos that reads as a list's: codes[3] is a batch of one (the video axis
    stays), an integer out of range is an IndexError, a slice may step backwards; a list, array or
    tensor of indices (or a mask) follows the tensors' rules."""
    if isinstance(index, slice):
        picked = range(n)[index]
        if picked.step > 0:
            return slice(picked.start, picked.stop, picked.step)
        return torch.tensor(list(picked), dtype=torch.long)  # tensors take no negative step
    try:
        i = operator.index(index)
    except TypeError:
        return index
    if not -n <= i < n:
        raise IndexError(f"video index {i} is out of range for {n} videos")
    i %= n
    return slice(i, i + 1)


@dataclass(frozen=True, repr=False)
class Codes:
    """Latents of N videos: identity [N, w_dim], pose, lighting (Trajectory), background [N, w_dim]."""

    identity: torch.Tensor
    pose: Trajectory
    lighting: Trajectory
    background: torch.Tensor

    def __post_init__(self) -> None:
        sizes = {f: len(getattr(self, f)) for f in FACTORS}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"all factors must hold the same number of videos, got {sizes}")
        for name in VECTOR_FACTORS:
            if getattr(self, name).ndim != 2:
                raise ValueError(f"{name} of shape {list(getattr(self, name).shape)} must be [N, w_dim]")

    def __len__(self) -> int:
        return self.identity.shape[0]

    def __repr__(self) -> str:
        return (
            f"Codes(N={len(self)}, {_shape('identity', self.identity)},"
            f" {_shape('background', self.background)}, {_where(self.identity)},\n"
            f"      pose={self.pose!r},\n      lighting={self.lighting!r})"
        )

    def __getitem__(self, index) -> Codes:
        index = _as_index(index, len(self))
        return Codes(self.identity[index], self.pose[index], self.lighting[index], self.background[index])

    def __iter__(self) -> Iterator[Codes]:
        """One video at a time, each a batch of one."""
        return (self[i] for i in range(len(self)))

    def replace(self, **factors) -> Codes:
        """A copy with the given factors replaced, e.g. codes.replace(background=other.background)."""
        unknown = sorted(set(factors) - set(FACTORS))
        if unknown:
            raise ValueError(f"unknown factors {unknown}; the factors are {', '.join(FACTORS)}")
        return dataclasses.replace(self, **factors)

    def swap(self, factor: str, i: int, j: int) -> Codes:
        """A copy where videos i and j exchange `factor`; the other factors stay."""
        _check_factor(factor)
        n = len(self)
        for k in (i, j):
            if not -n <= k < n:
                raise IndexError(f"video index {k} is out of range for {n} videos")
        order = list(range(n))
        order[i], order[j] = order[j], order[i]
        return self.replace(**{factor: getattr(self, factor)[order]})

    def with_factor(self, factor: str, source: Codes) -> Codes:
        """Take `factor` from `source` (same N, or 1 broadcast to all videos)."""
        _check_factor(factor)
        value = getattr(source, factor)
        if len(source) == 1 and len(self) > 1:
            value = value[[0] * len(self)]
        if len(value) != len(self):
            raise ValueError(f"source holds {len(source)} videos; need {len(self)} or 1")
        return self.replace(**{factor: value})

    def freeze(self, factor: str, t: float | None = 0.0) -> Codes:
        """Hold a trajectory factor (pose or lighting) at time t in every frame; None releases it."""
        if factor not in TRAJECTORY_FACTORS:
            raise ValueError(
                f"only {' and '.join(TRAJECTORY_FACTORS)} move over time; cannot freeze {factor!r}"
            )
        return self.replace(**{factor: getattr(self, factor).freeze(t)})

    @staticmethod
    def interpolate(a: Codes, b: Codes, alpha: float, factors: Sequence[str] = FACTORS) -> Codes:
        """From a (alpha=0) to b (alpha=1) in the given factors: linear in W, spherical for trajectories."""
        for factor in factors:
            _check_factor(factor)
        if len(a) != len(b):
            raise ValueError(f"cannot interpolate {len(a)} videos with {len(b)}")
        out = {}
        for factor in factors:
            x, y = getattr(a, factor), getattr(b, factor)
            out[factor] = (
                Trajectory.interpolate(x, y, alpha)
                if factor in TRAJECTORY_FACTORS
                else torch.lerp(x, y, alpha)
            )
        return a.replace(**out)

    @staticmethod
    def cat(items: Sequence[Codes]) -> Codes:
        """Concatenate batches of videos."""
        return Codes(
            torch.cat([c.identity for c in items]),
            Trajectory.cat([c.pose for c in items]),
            Trajectory.cat([c.lighting for c in items]),
            torch.cat([c.background for c in items]),
        )

    def to(self, device) -> Codes:
        return Codes(
            self.identity.to(device),
            self.pose.to(device),
            self.lighting.to(device),
            self.background.to(device),
        )


def _check_factor(factor: str) -> None:
    if factor not in FACTORS:
        raise ValueError(f"unknown factor {factor!r}; the factors are {', '.join(FACTORS)}")
