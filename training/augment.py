"""Adaptive augmentation for clips: one random draw per clip, applied identically to all its K frames."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stylevid.shapes import assert_shape

# ADA's magnitudes (Karras et al. 2020, appendix B): shifts up to 1/8 of the size, brightness
# offset ~ N(0, 0.2), contrast and saturation factors ~ 2^N(0, 0.5) and 2^N(0, 1).
MAX_SHIFT = 0.125
BRIGHTNESS_STD = 0.2
CONTRAST_LOG2_STD = 0.5
SATURATION_LOG2_STD = 1.0


@dataclass(frozen=True)
class AugmentParams:
    """Per-clip transforms of N clips; a transform that is off holds its identity value (0 or 1)."""

    flip: torch.Tensor  # [N] bool: mirror left-right
    shift: torch.Tensor  # [N, 2] int64: (down, right) in whole pixels
    brightness: torch.Tensor  # [N] offset added to every value
    contrast: torch.Tensor  # [N] factor on the deviation from each frame's mean
    saturation: torch.Tensor  # [N] factor on each pixel's deviation from its gray

    def __getitem__(self, rows: slice) -> AugmentParams:
        """The parameters of the clips in `rows`."""
        return AugmentParams(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(self)})

    def to(self, device: torch.device, dtype: torch.dtype) -> AugmentParams:
        """Move to `device`; the factors and offsets take `dtype`, the flags and shifts keep theirs."""
        return AugmentParams(
            flip=self.flip.to(device),
            shift=self.shift.to(device),
            brightness=self.brightness.to(device, dtype),
            contrast=self.contrast.to(device, dtype),
            saturation=self.saturation.to(device, dtype),
        )


def augment_clips(
    clips: torch.Tensor,
    p: float,
    generator: torch.Generator,
    rows: slice | None = None,
    batch: int | None = None,
) -> torch.Tensor:
    """Augment clips [n, K, 3, H, W] in [-1, 1], rows `rows` of a global batch of `batch` (default n).

    Draws are made for all `batch` clips, so a clip is augmented alike however the batch is split
    over processes. Each transform is on with probability p; a number p <= 0 returns `clips`
    itself, while a p held as a device tensor (ADA's) is never read: the transforms then always
    run, those that are off with their identity values. Differentiable to any order (G and R1
    backpropagate through it).
    """
    batch = clips.shape[0] if batch is None and rows is None else batch
    rows = _check_rows(clips.shape[0], rows, batch)
    if not torch.is_tensor(p) and p <= 0:
        return clips
    params = draw_augment_params(batch, p, clips.shape[-2:], generator)
    return apply_augment(clips, params[rows])


def _check_rows(n: int, rows: slice | None, batch: int | None) -> slice:
    """The rows of the global batch these n clips are, as a slice start:stop."""
    if rows is None:
        if batch != n:
            raise ValueError(f"batch={batch} but clips holds {n} clips: pass rows, the clips' rows in it")
        return slice(0, n)
    if batch is None:
        raise ValueError(f"rows={rows} was given without batch: pass batch, the global batch size")
    start = 0 if rows.start is None else rows.start
    stop = batch if rows.stop is None else rows.stop
    if rows.step not in (None, 1) or not 0 <= start <= stop <= batch:
        raise ValueError(
            f"rows={rows} does not fit a batch of {batch}: expected a:b with 0 <= a <= b <= {batch}"
        )
    if stop - start != n:
        raise ValueError(
            f"rows={rows} holds {stop - start} clips but clips holds {n}: pass this process's rows"
        )
    return slice(start, stop)


def draw_augment_params(
    batch: int, p: float | torch.Tensor, size: tuple[int, int], generator: torch.Generator
) -> AugmentParams:
    """Draw the transforms of `batch` clips of frames `size` (H, W), each on with probability p.

    The numbers are drawn on the CPU from `generator`; a p held as a tensor on a device (ADA's,
    during training) gates them there, so p is never read on the host, and they are uploaded
    without waiting for the device.
    """
    device = p.device if torch.is_tensor(p) else torch.device("cpu")

    def draw(*shape, normal=False) -> torch.Tensor:
        values = (torch.randn if normal else torch.rand)(*shape, generator=generator)
        return values.to(device, non_blocking=True)

    def gate() -> torch.Tensor:
        return draw(batch) < p

    flip, shift_on = gate(), gate()
    bound = torch.tensor([float(size[0]), float(size[1])]) * MAX_SHIFT
    shift = ((torch.rand(batch, 2, generator=generator) * 2 - 1) * bound).round().long()
    shift = shift.to(device, non_blocking=True)
    brightness_on, contrast_on, saturation_on = gate(), gate(), gate()
    brightness = draw(batch, normal=True) * BRIGHTNESS_STD
    contrast = torch.exp2(draw(batch, normal=True) * CONTRAST_LOG2_STD)
    saturation = torch.exp2(draw(batch, normal=True) * SATURATION_LOG2_STD)
    return AugmentParams(
        flip=flip,
        shift=shift * shift_on[:, None],
        brightness=torch.where(brightness_on, brightness, 0.0),
        contrast=torch.where(contrast_on, contrast, 1.0),
        saturation=torch.where(saturation_on, saturation, 1.0),
    )


def apply_augment(clips: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """Flip, shift, brightness, contrast, saturation of clips [N, K, 3, H, W], one transform per clip."""
    assert_shape(clips, [None, None, 3, None, None], "augmented clips")
    n = clips.shape[0]
    assert_shape(params.shift, [n, 2], "augment shifts")
    params = params.to(clips.device, clips.dtype)
    view = (n, 1, 1, 1, 1)
    x = torch.where(params.flip.view(view), clips.flip(-1), clips)
    x = _translate(x, params.shift)
    x = x + params.brightness.view(view)
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    x = mean + (x - mean) * params.contrast.view(view)
    gray = x.mean(dim=2, keepdim=True)
    return gray + (x - gray) * params.saturation.view(view)


def _translate(clips: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift each clip of [N, K, C, H, W] by its shift [N, 2] in whole pixels, filling by reflection."""
    n, k, c, h, w = clips.shape
    # One pad by the largest shift the draw can make (|round(x)| <= ceil(|x|)) serves every clip,
    # and gathers read each clip's window: no shift value is ever read on the host.
    pad_h, pad_w = math.ceil(h * MAX_SHIFT), math.ceil(w * MAX_SHIFT)
    padded = F.pad(clips.flatten(0, 1), [pad_w, pad_w, pad_h, pad_h], mode="reflect").unflatten(0, (n, k))
    ys = pad_h + torch.arange(h, device=clips.device) - shift[:, :1]  # [N, H]: source row of each row
    xs = pad_w + torch.arange(w, device=clips.device) - shift[:, 1:]  # [N, W]
    x = padded.gather(3, ys.view(n, 1, 1, h, 1).expand(n, k, c, h, w + 2 * pad_w))
    return x.gather(4, xs.view(n, 1, 1, 1, w).expand(n, k, c, h, w))


class AdaptiveProbability:
    """ADA's controller: raise p while E[sign D(real)] is above the target (D overfits), else lower it.

    p and the signs live on `device` as 0-dim tensors and every adjustment is made there: training
    never waits for the device to learn p. They are read on the host only by state() (snapshots).
    """

    def __init__(
        self,
        target: float,
        speed_kimg: float,
        batch: int,
        interval: int,
        p: float = 0.0,
        device: torch.device | str = "cpu",
    ):
        self.target, self.device = target, torch.device(device)
        self.step_size = batch * interval / (speed_kimg * 1000)
        self.p = p
        self._signs = torch.zeros((), device=self.device)
        self._count = 0

    @property
    def p(self) -> torch.Tensor:
        """The probability of each transform, a 0-dim float32 tensor on the device."""
        return self._p

    @p.setter
    def p(self, value: float | torch.Tensor) -> None:
        self._p = torch.as_tensor(value, dtype=torch.float32, device=self.device)

    def observe(self, sign_sum: float | torch.Tensor, count: int) -> None:
        """Accumulate the sum of sign(D(real)) over `count` clips (summed over all processes)."""
        self._signs = self._signs + sign_sum
        self._count += count

    def update(self) -> torch.Tensor | None:
        """Move p by one step toward balance; returns the measured E[sign D(real)] (a 0-dim tensor),
        or None when nothing was observed since the last update."""
        if self._count == 0:
            return None
        rt = self._signs / self._count
        step = torch.where(rt >= self.target, self.step_size, -self.step_size)
        self.p = (self.p + step).clamp(0.0, 1.0)
        self._signs, self._count = torch.zeros_like(self._signs), 0
        return rt

    def state(self) -> dict[str, float | int]:
        """p and the signs observed since the last update: what an exact resume needs (host reads)."""
        return {"p": float(self.p), "signs": float(self._signs), "count": self._count}

    def load_state(self, state: dict[str, float | int]) -> None:
        """Restore a dict made by state()."""
        if set(state) != {"p", "signs", "count"}:
            raise ValueError(
                f"ADA state has keys {sorted(state)}, expected ['count', 'p', 'signs']: "
                "pass a dict made by AdaptiveProbability.state()"
            )
        self.p = float(state["p"])
        self._signs = torch.tensor(float(state["signs"]), device=self.device)
        self._count = int(state["count"])
