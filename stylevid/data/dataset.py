"""The training loader: clips of K frames of one video at sampled times, with their factors, from any dataset.

An item is a dict: ``frames`` float32 [K, 3, H, W] in [-1, 1], ``times`` float32 [K] (frame indices,
strictly increasing), ``video`` (int, the video used) and, when the dataset has factors, ``factors``:
identity [Di], background [Db], pose [K, 3] and lighting [K, Dl] (float32) at the sampled frames.

Clip times come from stylevid.data.clip_times (``random`` or ``uniform`` sampling, described there), the
sampler the trainer also uses for fake clips.

Randomness comes from a generator seeded by (seed, epoch, item index), so items do not depend on the
number of DataLoader workers or on which worker loads them. `item(index, epoch)` names the epoch with
the index (the trainer's loader uses it: workers that prefetch across an epoch boundary cannot race on a
shared epoch); `dataset[index]` uses the epoch of `set_epoch`, which reaches workers already started
(the epoch lives in shared memory) and must be called before iterating, like DistributedSampler's.

A flip (with probability 1/2 when flip=True) mirrors all K frames of a clip together and maps the
factors that MIRRORED_FACTORS names to their mirrored values: yaw and roll (the head turns and tilts
the other way) and light azimuth change sign, a background pattern angle becomes pi - angle. Other
factors are kept: the mirror image counts as the same person in front of the same background.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch

from stylevid.config import FACTORS, TRAJECTORY_FACTORS
from stylevid.data.clip_times import SAMPLINGS, sample_times
from stylevid.data.files import DatasetFiles
from stylevid.data.index import VideoEntry, index_digest, mirror_coefficients, read_index
from stylevid.data.reader import read_frames


class VideoClipDataset(torch.utils.data.Dataset):
    """One clip of `frames_per_clip` frames per video of a dataset (folder, .zip, video files); module doc."""

    def __init__(
        self,
        path: str | os.PathLike,
        frames_per_clip: int = 3,
        max_gap: int = 32,
        sampling: str = "random",
        flip: bool = True,
        seed: int = 0,
        resolution: int | None = None,
    ):
        if not isinstance(frames_per_clip, int) or frames_per_clip < 1:
            raise ValueError(f"frames_per_clip={frames_per_clip!r} must be a positive int")
        if not isinstance(max_gap, int) or max_gap < frames_per_clip - 1:
            raise ValueError(
                f"max_gap={max_gap!r}: {frames_per_clip} distinct frames need a span of at least"
                f" {frames_per_clip - 1}; pass max_gap >= {frames_per_clip - 1}"
            )
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling={sampling!r} is not one of {SAMPLINGS}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} must be a non-negative int")
        index = read_index(path)
        short = [
            (entry.location, f"has {entry.frames} frames, fewer than frames_per_clip={frames_per_clip}")
            for entry in index.videos
            if entry.frames < frames_per_clip
        ]
        self.path = index.path
        # What a run records of its data, so that a resume can tell when it is given other data.
        self.signature = {"path": str(self.path.resolve()), "digest": index_digest(index)}
        self.fps = index.fps
        self.resolution = index.resolution
        self.factor_names = index.factor_names
        self.videos: tuple[VideoEntry, ...] = tuple(e for e in index.videos if e.frames >= frames_per_clip)
        self.skipped: list[tuple[str, str]] = [*index.skipped, *short]
        for name, reason in self.skipped:
            warnings.warn(f"skipping {self.path / name}: {reason}", stacklevel=2)
        if not self.videos:
            reasons = "; ".join(f"{name}: {reason}" for name, reason in self.skipped[:5]) or "it is empty"
            raise ValueError(
                f"{self.path} has no usable video of at least {frames_per_clip} frames ({reasons}); write one"
                " with DatasetWriter or stylevid prepare"
            )
        if resolution is not None and resolution != index.resolution:
            raise ValueError(
                f"{index.path} holds {index.resolution}x{index.resolution} frames but resolution={resolution}"
                f" was asked for: train a preset of that size (stylevid train --preset: synth64 is 64, ffs256"
                f" 256), or prepare the dataset again with stylevid prepare --resolution {resolution}"
            )
        if self.skipped:
            warnings.warn(
                f"{self.path}: skipped {len(self.skipped)} entries, {len(self.videos)} videos remain; the"
                " reasons are in dataset.skipped",
                stacklevel=2,
            )
        self.frames_per_clip = frames_per_clip
        self.max_gap = max_gap
        self.sampling = sampling
        self.flip = flip
        self.seed = seed
        # (scale [D], offset [D]) per factor: a flipped clip's value is scale * value + offset.
        self._mirror = {
            factor: torch.tensor(mirror_coefficients(factor, names))
            for factor, names in (index.factor_names or {}).items()
        }
        self._files = DatasetFiles(self.path)
        # Shared memory, so set_epoch also reaches persistent DataLoader workers.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._warned: set[int] = set()
        self._loaded = (
            False  # whether this process has loaded any clip: tells "damaged since" from "never read"
        )

    def __len__(self) -> int:
        return len(self.videos)

    def set_epoch(self, epoch: int) -> None:
        """Draw the clips of epoch `epoch` (call before iterating, as with DistributedSampler.set_epoch)."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch={epoch!r} must be a non-negative int")
        self._epoch.fill_(epoch)

    def _rng(self, index: int, epoch: int) -> np.random.Generator:
        """The generator of item `index` in epoch `epoch`: the same in every process and worker."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index]))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item `index` of the epoch set by set_epoch (see module doc)."""
        return self.item(index, int(self._epoch))

    def item(self, index: int, epoch: int) -> dict[str, Any]:
        """Item `index` of epoch `epoch`; an unreadable video is replaced by the next readable one."""
        if not 0 <= index < len(self.videos):
            raise IndexError(f"item {index} is out of range for {len(self.videos)} videos")
        failure = None
        # The replacement depends only on the files, never on what this process met before, so
        # every worker makes the same choice; a broken video is retried, but warned about once.
        for attempt in range(len(self.videos)):
            video = (index + attempt) % len(self.videos)
            try:
                item = self._clip(video, self._rng(index, epoch))
            except ValueError as exc:
                failure = exc
                if video not in self._warned:
                    self._warned.add(video)
                    warnings.warn(
                        f"cannot load {self.path / self.videos[video].location} ({exc}); items that draw it"
                        " use the next readable video instead",
                        stacklevel=2,
                    )
                continue
            self._loaded = True
            return item
        if self._loaded:
            raise RuntimeError(
                f"no video of {self.path} can be loaded any more, though videos loaded before (last:"
                f" {failure}); the dataset changed or was damaged after it was indexed: check the files and"
                " restart"
            ) from failure
        raise RuntimeError(
            f"none of the {len(self.videos)} videos of {self.path} could be loaded (last: {failure}): their"
            " headers were readable when indexed but their frames are not; check that the files decode, and"
            " prepare the dataset again"
        ) from failure

    def _clip(self, video: int, rng: np.random.Generator) -> dict[str, Any]:
        """The item for video `video`, randomness from `rng`; ValueError if a frame is unreadable."""
        entry = self.videos[video]
        times = torch.from_numpy(
            sample_times(entry.frames, self.frames_per_clip, self.max_gap, self.sampling, rng)
        )
        flip = self.flip and bool(rng.random() < 0.5)
        pixels = read_frames(self._files, entry, times.tolist())
        size = self.resolution
        if pixels.shape[1:] != (size, size, 3):
            raise ValueError(
                f"its frames are {list(pixels.shape[1:])}, not the dataset's [{size}, {size}, 3]"
            )
        if flip:
            pixels = pixels[:, :, ::-1]
        # In numpy: torch would spread these small element-wise ops over its intra-op threads, whose
        # synchronisation costs more than the work (and DataLoader workers run one thread anyway).
        frames = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(127.5) - 1
        item: dict[str, Any] = {
            "frames": torch.from_numpy(frames),
            "times": times.float(),
            "video": video,
        }
        if entry.factors is not None:
            factors = {}
            for factor in FACTORS:
                value = torch.from_numpy(entry.factors[factor]).float()
                if factor in TRAJECTORY_FACTORS:
                    value = value[times]
                if flip:
                    scale, offset = self._mirror[factor]
                    value = scale * value + offset
                factors[factor] = value
            item["factors"] = factors
        return item
