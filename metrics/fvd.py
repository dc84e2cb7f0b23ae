"""Fréchet Video Distance on the protocols StyleGAN-V names, with the I3D of Google's FVD reference.

A protocol fixes the clips: ``fvd2048_16f`` compares 2048 real clips of 16 consecutive frames with 2048
generated ones, ``fvd2048_128f`` the same with 128 frames, ``fvd2048_128f_subsample8f`` 16 frames taken
every 8th of 128. Real clips: the first 2048 videos of the dataset (in its order) that hold at least
frames x step frames, shorter ones dropped, one clip per video at a random offset drawn from `seed`.
Generated clips: video i is seed + i, frames at times 0, step, 2 step, ... Both sides go through the I3D
as uint8 frames (generated frames in [-1, 1] quantised as videos are saved), and the covariances
divide by N, as StyleGAN-V's do.

Real-data statistics are cached in ``<cache>/fvd`` (``$STYLEVID_CACHE_DIR``, by default
``~/.cache/stylevid``) under a key of what determines them: the dataset's path, its dataset.json and
the names and modification times of its top-level entries (of the .zip itself for a zip), the protocol,
the resolution, the seed, the network's weights hash and the feature-computation version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from stylevid.api import VideoGenerator
from stylevid.atomic import write_atomically
from stylevid.data.files import DatasetFiles
from stylevid.data.index import INDEX_FILE, DatasetIndex, VideoEntry, read_index
from stylevid.data.reader import read_frames
from stylevid.metrics.frechet import FeatureStats, frechet_distance
from stylevid.metrics.i3d import load_i3d
from stylevid.metrics.weights import cache_root
from stylevid.video import to_uint8

# Part of the real-statistics cache key: bump it when a change alters real features (clip choice,
# preprocessing, network), so that statistics cached before are not reused.
STATS_VERSION = 1


@dataclass(frozen=True)
class Protocol:
    """`clips` real and `clips` generated clips of `frames` frames, every `step`-th frame of the source."""

    name: str
    clips: int
    frames: int
    step: int = 1

    @property
    def span(self) -> int:
        """Source frames a clip reaches over: its last frame is this many after its first."""
        return (self.frames - 1) * self.step

    @property
    def min_length(self) -> int:
        """Videos with fewer frames are dropped (StyleGAN-V's rule: frames x step)."""
        return self.frames * self.step


PROTOCOLS = {
    p.name: p
    for p in (
        Protocol("fvd2048_16f", 2048, 16),
        Protocol("fvd2048_128f", 2048, 128),
        Protocol("fvd2048_128f_subsample8f", 2048, 16, 8),
    )
}


def _protocol(protocol: str | Protocol) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown FVD protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def real_clips(
    index: DatasetIndex, protocol: str | Protocol, seed: int = 0
) -> list[tuple[VideoEntry, list[int]]]:
    """(video, frame indices) of each real clip of `protocol`: one per long-enough video (module doc)."""
    protocol = _protocol(protocol)
    videos = [v for v in index.videos if v.frames >= protocol.min_length][: protocol.clips]
    if not videos:
        raise ValueError(
            f"no video of {index.path} has the {protocol.min_length} frames {protocol.name} needs (the"
            f" longest has {max((v.frames for v in index.videos), default=0)}); use a protocol with shorter"
            " clips"
        )
    if len(videos) < protocol.clips:
        warnings.warn(
            f"{index.path} has {len(videos)} videos of at least {protocol.min_length} frames, fewer than"
            f" the {protocol.clips} real clips of {protocol.name}: the value is not comparable with published"
            " ones",
            stacklevel=2,
        )
    offsets = np.random.default_rng(seed).integers(0, [v.frames - protocol.span for v in videos])
    return [
        (v, list(range(o, o + protocol.span + 1, protocol.step)))
        for v, o in zip(videos, offsets.tolist(), strict=True)
    ]


class _RealClips(torch.utils.data.Dataset):
    """uint8 [T, 3, H, W] clips read from a dataset; items for a DataLoader."""

    def __init__(self, path: Path, clips: list[tuple[VideoEntry, list[int]]], resolution: int):
        self.files = DatasetFiles(path)
        self.clips = clips
        self.resolution = resolution

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> torch.Tensor:
        entry, times = self.clips[i]
        frames = read_frames(self.files, entry, times)
        if frames.shape[1:] != (self.resolution, self.resolution, 3):
            raise ValueError(
                f"{entry.location} has frames of {list(frames.shape[1:])}, not the dataset's"
                f" [{self.resolution}, {self.resolution}, 3]; prepare the dataset again"
            )
        return torch.from_numpy(frames).permute(0, 3, 1, 2)


def _fingerprint(path: Path) -> dict[str, Any]:
    """What identifies a dataset's content cheaply: dataset.json and its top-level entries' times."""
    if path.is_file():
        stat = path.stat()
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    index = path / INDEX_FILE
    return {
        "index_sha256": hashlib.sha256(index.read_bytes()).hexdigest() if index.is_file() else None,
        "entries": sorted(
            (e.name, e.stat().st_mtime_ns) for e in os.scandir(path) if not e.name.startswith(".")
        ),
    }


def _weights_sha256(detector) -> str:
    sha = getattr(detector, "weights_sha256", None)
    if not isinstance(sha, str):
        raise ValueError(
            f"the detector {type(detector).__name__} has no weights_sha256: results and cached statistics"
            " must say which weights made them; load it with stylevid.metrics.i3d.load_i3d or set the"
            " attribute"
        )
    return sha


def _embed(detector, videos: torch.Tensor, device: torch.device, stats: FeatureStats | None) -> FeatureStats:
    with torch.inference_mode():
        features = detector(videos.to(device))
    if stats is None:
        stats = FeatureStats(features.shape[1])
    stats.append(features)
    return stats


def real_statistics(
    dataset: str | os.PathLike | DatasetIndex,
    protocol: str | Protocol,
    detector,
    seed: int = 0,
    batch: int = 4,
    device: str | torch.device = "cpu",
    workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean [D], covariance [D, D], clips) of the detector's features of a dataset's real clips; cached."""
    protocol = _protocol(protocol)
    index = dataset if isinstance(dataset, DatasetIndex) else read_index(dataset)
    key = json.dumps(
        {
            "stats_version": STATS_VERSION,
            "dataset": str(index.path.resolve()),
            "fingerprint": _fingerprint(index.path),
            "protocol": dataclasses.asdict(protocol),
            "resolution": index.resolution,
            "seed": seed,
            "weights_sha256": _weights_sha256(detector),
        },
        sort_keys=True,
    )
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "fvd"
    file = folder / f"{protocol.name}-{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as cached:
                if str(cached["key"]) == key:
                    return cached["mu"], cached["cov"], int(cached["count"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            warnings.warn(
                f"cannot read cached FVD statistics {file} ({exc}); computing them again", stacklevel=2
            )
    clips = _RealClips(index.path, real_clips(index, protocol, seed), index.resolution)
    loader = torch.utils.data.DataLoader(clips, batch_size=batch, num_workers=workers)
    stats = None
    with tqdm(total=len(clips), desc=f"{protocol.name} real", unit="clip", disable=not progress) as bar:
        for videos in loader:
            stats = _embed(detector, videos, torch.device(device), stats)
            bar.update(len(videos))
    clips.files.close()
    mu, cov = stats.mean_cov()
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, mu=mu, cov=cov, count=np.int64(stats.count), key=np.array(key))
    write_atomically(file, buffer.getvalue())
    return mu, cov, stats.count


def generated_statistics(
    generator: VideoGenerator,
    protocol: str | Protocol,
    detector,
    seed: int = 0,
    batch: int = 4,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean [D], covariance [D, D], clips) of the detector's features of generated clips (module doc)."""
    protocol = _protocol(protocol)
    times = torch.arange(protocol.frames, dtype=torch.float32) * protocol.step
    stats = None
    with tqdm(
        total=protocol.clips, desc=f"{protocol.name} generated", unit="clip", disable=not progress
    ) as bar:
        for start in range(0, protocol.clips, batch):
            seeds = range(seed + start, seed + min(start + batch, protocol.clips))
            codes = generator.sample_seeds(seeds, frames=protocol.span + 1)
            # Quantised as saved videos are, so both sides reach the I3D as 8-bit frames.
            clips = torch.from_numpy(to_uint8(generator.render(codes, times))).movedim(-1, -3)
            stats = _embed(detector, clips, torch.device(device), stats)
            bar.update(len(seeds))
    mu, cov = stats.mean_cov()
    return mu, cov, stats.count


def compute_fvd(
    generator: VideoGenerator,
    dataset_path: str | os.PathLike,
    protocol: str | Protocol = "fvd2048_16f",
    batch: int = 4,
    device: str | torch.device | None = None,
    seed: int = 0,
    detector=None,
    workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """FVD of `generator` against a dataset: {value, protocol, weights_sha256, num_real, num_fake}.

    `batch` clips go through the I3D at a time, on `device` (default: the generator's). `detector`
    replaces the Kinetics-400 I3D: any module from uint8 [N, T, 3, H, W] to features [N, D] with a
    `weights_sha256` attribute. `workers` DataLoader processes read the real clips.
    """
    protocol = _protocol(protocol)
    device = torch.device(device) if device is not None else generator.device
    index = read_index(dataset_path)
    if index.resolution != generator.resolution:
        raise ValueError(
            f"the generator makes {generator.resolution}x{generator.resolution} frames but {index.path} holds"
            f" {index.resolution}x{index.resolution}: compare a generator with the dataset it was trained on"
        )
    if detector is None:
        detector = load_i3d(device=device)
    mu_real, cov_real, num_real = real_statistics(
        index, protocol, detector, seed, batch, device, workers, cache_dir, progress
    )
    mu_fake, cov_fake, num_fake = generated_statistics(
        generator, protocol, detector, seed, batch, device, progress
    )
    return {
        "value": frechet_distance(mu_fake, cov_fake, mu_real, cov_real),
        "protocol": protocol.name,
        "weights_sha256": _weights_sha256(detector),
        "num_real": num_real,
        "num_fake": num_fake,
    }
