"""The four latents of a batch of videos, and the edits made on them: swap, replace, interpolate, freeze.

identity and background are W-space vectors, one per video, so interpolating them is linear in W.
pose and lighting are trajectories: a per-video motion code plus anchor codes along time (both
Gaussian, so they are interpolated spherically), turned into a W vector at any time t by the
generator's motion mappings.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

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


# The physical values a generator with the face layer (GeneratorConfig.face3d) lets codes set. Pose in
# degrees; the light's names depend on its kind (renderer: azimuth, elevation in degrees, intensity,
# ambient, warmth; spherical harmonics: azimuth, elevation, strength), checked by the generator.
POSE_VALUES = ("yaw", "pitch", "roll")
LIGHT_VALUES = ("azimuth", "elevation", "intensity", "ambient", "warmth", "strength")


@dataclass(frozen=True, repr=False)
class Keyframes:
    """A physical value set over time for N videos: values [N, K] at times [K] (frames, increasing).

    Linear between keyframes and held before the first and after the last; NaN in a video's row
    leaves that video's own value (what its code gives).
    """

    times: torch.Tensor
    values: torch.Tensor

    def __post_init__(self) -> None:
        if self.times.ndim != 1 or self.values.ndim != 2 or self.values.shape[1] != len(self.times):
            raise ValueError(
                f"keyframes of times {list(self.times.shape)} and values {list(self.values.shape)}"
                " must be [K] and [N, K]"
            )
        if len(self.times) > 1 and not bool((self.times[1:] > self.times[:-1]).all()):
            raise ValueError(f"keyframe times {self.times.tolist()} must increase")

    def at(self, t: torch.Tensor) -> torch.Tensor:
        """The values at times t [N, T] as [N, T]."""
        times = self.times.to(t.device, t.dtype)
        values = self.values.to(t.device, t.dtype)
        if len(times) == 1:
            return values.expand(-1, t.shape[1])
        clamped = t.clamp(times[0], times[-1])
        right = torch.searchsorted(times, clamped.contiguous(), right=True).clamp(1, len(times) - 1)
        left = right - 1
        share = (clamped - times[left]) / (times[right] - times[left])
        return torch.lerp(values.gather(1, left), values.gather(1, right), share)

    def __getitem__(self, index) -> Keyframes:
        return Keyframes(self.times, self.values[index])

    def to(self, device) -> Keyframes:
        return Keyframes(self.times.to(device), self.values.to(device))


def _keyframes(name: str, value, n: int) -> Keyframes:
    """Keyframes for N videos from a number (held), a {time: number} dict (frames), or N numbers."""
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"{name}={{}} sets no keyframes; give {{frame: value, ...}}")
        times = sorted(value)
        numbers_ = [value[k] for k in times]
        if not all(isinstance(x, numbers.Real) and math.isfinite(x) for x in (*times, *numbers_)):
            raise ValueError(
                f"{name}={value!r}: keyframes map frames to finite numbers, e.g. {{0: -40, 50: 40}}"
            )
        row = torch.tensor(numbers_, dtype=torch.float32)
        return Keyframes(torch.tensor(times, dtype=torch.float32), row[None].expand(n, -1).clone())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{name}={value!r} must be a finite number")
        return Keyframes(torch.zeros(1), torch.full([n, 1], float(value)))
    per_video = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
    if per_video.shape != (n,):
        raise ValueError(
            f"{name} has {per_video.numel()} values for {n} videos; give a number, one per video,"
            " or {frame: value} keyframes"
        )
    return Keyframes(torch.zeros(1), per_video[:, None].clone())


def _cat_settings(items: Sequence[Trajectory]) -> dict[str, Keyframes]:
    """Concatenate the settings of trajectories along videos; a video without one keeps its own value."""
    names = sorted({name for item in items for name in item.settings})
    out = {}
    for name in names:
        times = [item.settings[name].times for item in items if name in item.settings]
        if any(t.shape != times[0].shape or not torch.equal(t, times[0]) for t in times):
            raise ValueError(f"codes whose {name} keyframes fall at different times cannot be combined")
        rows = [
            item.settings[name].values
            if name in item.settings
            else torch.full([len(item), len(times[0])], float("nan"), device=item.z.device)
            for item in items
        ]
        out[name] = Keyframes(times[0], torch.cat(rows))
    return out


@dataclass(frozen=True, repr=False)
class Trajectory:
    """A motion over time for N videos: z [N, z_dim], anchors [N, K, motion_dim] spaced `spacing` frames.

    psi [N]: truncation toward the mapping's mean; frozen_at [N]: the time every frame shows (a
    still pose or a fixed light), NaN where the trajectory moves. settings: physical values set by
    name (Codes.with_pose, Codes.with_light), which replace what the code gives.
    """

    z: torch.Tensor
    anchors: torch.Tensor
    spacing: float
    psi: torch.Tensor
    frozen_at: torch.Tensor
    settings: dict[str, Keyframes] = field(default_factory=dict)

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
            f" {self._frozen()},{self._set()} {_where(self.z)})"
        )

    def _set(self) -> str:
        return "".join(f" {name} set," for name in sorted(self.settings))

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
            settings={name: keys[index] for name, keys in self.settings.items()},
        )

    def with_settings(self, names: Sequence[str], **values) -> Trajectory:
        """A copy with physical values set (see Codes.with_pose); None releases a value."""
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown values {unknown}; these codes can set {', '.join(names)}")
        settings = dict(self.settings)
        for name, value in values.items():
            if value is None:
                settings.pop(name, None)
            else:
                settings[name] = _keyframes(name, value, len(self)).to(self.z.device)
        return dataclasses.replace(self, settings=settings)

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
            {name: keys.to(device) for name, keys in self.settings.items()},
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
            _cat_settings(items),
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
            a.settings if alpha < 0.5 else b.settings,
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

    def with_pose(self, **angles) -> Codes:
        """Set the head's yaw, pitch, roll in degrees (a generator with the face layer), e.g.
        codes.with_pose(yaw=30) or a turn codes.with_pose(yaw={0: -40, 50: 40}) (frame: degrees,
        linear between); one number per video also works. None releases an angle to the code's own.

        yaw > 0 turns the nose to the image's right, pitch > 0 lifts it, roll > 0 tilts the head
        counter-clockwise on screen.
        """
        return self.replace(pose=self.pose.with_settings(POSE_VALUES, **angles))

    def with_light(self, **light) -> Codes:
        """Set the light (a generator with the face layer): azimuth and elevation in degrees (> 0: from the
        image's right, from above), and for the renderer's light intensity, ambient, warmth (for a
        spherical-harmonics light strength). Numbers, {frame: value} keyframes or one per video, as
        with_pose."""
        return self.replace(lighting=self.lighting.with_settings(LIGHT_VALUES, **light))

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
