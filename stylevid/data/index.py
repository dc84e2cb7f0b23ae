"""The dataset index: what a dataset holds (dataset.json, VideoEntry, DatasetIndex), checked, and read_index.

A dataset is a directory, or a .zip with the same content::

    dataset.json              the index (below)
    video_00000/000000.png    one folder per video, frames in order (png or jpg read; png written)
    video_00000/000001.png
    ...

``dataset.json``::

    {"format": "stylevid-dataset", "format_version": 1, "fps": 25.0, "resolution": 64,
     "factor_names": {"identity": [...], "pose": ["yaw", "pitch", "roll"], "lighting": [...],
                      "background": [...]} or null,
     "videos": [{"name": "video_00000", "frames": T,
                 "factors": {"identity": [Di], "background": [Db], "pose": [T x 3], "lighting": [T x Dl]}
                            or null,
                 "source": "where it came from" (optional)}]}

A folder of .mp4/.avi/.mov files (no dataset.json, frame rate from the files) is a dataset for reading too,
and so is a folder of frame folders without dataset.json (25 fps, with a warning). Frame folders and video
files that dataset.json does not list are indexed as videos without factors.

Factor names carry meaning: pose is yaw/pitch/roll in radians (yaw > 0 turns the nose to the image's
right, roll > 0 tilts the head counter-clockwise), and MIRRORED_FACTORS says how a horizontal flip of the
images changes the factors it names (the loader's flip augmentation relies on it).

Frames are read by stylevid.data.reader, datasets written by stylevid.data.writer.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from stylevid.config import FACTORS, TRAJECTORY_FACTORS
from stylevid.data.files import DatasetFiles
from stylevid.video import FRAME_SUFFIXES, natural_key

FORMAT = "stylevid-dataset"
FORMAT_VERSION = 1
INDEX_FILE = "dataset.json"
DEFAULT_FPS = 25.0
POSE_NAMES = ("yaw", "pitch", "roll")
# The PyAV formats of stylevid.video; gifs are palette-quantised previews, not training data.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov")
# How mirroring the images left-right changes a factor value: factor -> name -> (scale, offset) of
# value -> scale * value + offset. Angles measured from the image's vertical axis change sign (light
# azimuth > 0 comes from the image's right); a pattern angle from the image's x axis becomes pi - angle.
MIRRORED_FACTORS: dict[str, dict[str, tuple[float, float]]] = {
    "pose": {"yaw": (-1.0, 0.0), "roll": (-1.0, 0.0)},
    "lighting": {"azimuth": (-1.0, 0.0)},
    "background": {"angle": (-1.0, math.pi)},
}


def mirror_coefficients(factor: str, names: Sequence[str]) -> tuple[list[float], list[float]]:
    """(scale [D], offset [D]) for `factor`'s `names`: a mirrored frame's value is scale * value + offset."""
    pairs = [MIRRORED_FACTORS.get(factor, {}).get(name, (1.0, 0.0)) for name in names]
    return [scale for scale, _ in pairs], [offset for _, offset in pairs]


@dataclass(frozen=True, eq=False)
class VideoEntry:
    """One video: `frames` frames at `location` ('/'-separated, in the dataset), a frame folder or a file."""

    name: str
    frames: int
    factors: (
        dict[str, np.ndarray] | None
    )  # float64: identity [Di], background [Db], pose [T, 3], lighting [T, Dl]
    kind: str  # "frames" (a folder of images) or "file" (an mp4/avi/mov)
    location: str
    # Frame file names in order; empty when they are the standard 000000.png, 000001.png, ... (saves
    # memory in every DataLoader worker on datasets of millions of frames).
    files: tuple[str, ...] = ()
    source: str | None = None

    def frame_path(self, t: int) -> str:
        """Path inside the dataset of frame `t` of a frame-folder video."""
        return f"{self.location}/{self.files[t] if self.files else frame_name(t)}"


@dataclass(frozen=True, eq=False)
class DatasetIndex:
    """What a dataset holds: its usable videos, and (path in the dataset, reason) for what was skipped."""

    path: Path
    fps: float
    resolution: int
    factor_names: dict[str, tuple[str, ...]] | None
    videos: tuple[VideoEntry, ...]
    skipped: tuple[tuple[str, str], ...]


def frame_name(t: int) -> str:
    """File name of frame `t` in a frame folder the writer made: 000000.png, 000001.png, ..."""
    return f"{t:06d}.png"


def check_factor_names(factor_names: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]] | None:
    """`factor_names` as tuples, checked: the four factors, distinct str names, pose = yaw/pitch/roll."""
    if factor_names is None:
        return None
    if not isinstance(factor_names, Mapping) or set(factor_names) != set(FACTORS):
        keys = sorted(factor_names) if isinstance(factor_names, Mapping) else type(factor_names).__name__
        raise ValueError(
            f"factor_names has keys {keys}; expected a dict with exactly the keys {list(FACTORS)}"
        )
    checked = {}
    for factor in FACTORS:
        names = factor_names[factor]
        if (
            not isinstance(names, list | tuple)
            or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)
        ):
            raise ValueError(f"factor_names[{factor!r}] = {names!r}; expected a list of distinct str names")
        checked[factor] = tuple(names)
    if checked["pose"] != POSE_NAMES:
        raise ValueError(
            f"factor_names['pose'] = {list(checked['pose'])}; pose is {list(POSE_NAMES)} in radians, in"
            " this order (horizontal flips negate yaw and roll): convert the pose to it"
        )
    return checked


def check_factors(
    factors: Mapping[str, Any] | None, frames: int, factor_names: Mapping[str, Sequence[str]] | None
) -> dict[str, np.ndarray] | None:
    """Factors of a `frames`-frame video as float64 arrays, checked against factor_names (see VideoEntry)."""
    if factor_names is None:
        if factors is not None:
            raise ValueError(
                "factors were given but the dataset has no factor_names: pass factor_names to DatasetWriter,"
                " or factors=None"
            )
        return None
    if factors is None:
        raise ValueError(
            "the dataset has factor_names, so every video needs factors: pass a dict of"
            f" {list(FACTORS)} (or write a dataset without factor_names)"
        )
    if not isinstance(factors, Mapping) or set(factors) != set(FACTORS):
        keys = sorted(factors) if isinstance(factors, Mapping) else type(factors).__name__
        raise ValueError(f"factors has keys {keys}; expected exactly {list(FACTORS)}")
    checked = {}
    for factor in FACTORS:
        width = len(factor_names[factor])
        expected = (frames, width) if factor in TRAJECTORY_FACTORS else (width,)
        try:
            array = np.asarray(factors[factor], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"factors[{factor!r}] is not an array of numbers: {exc}") from exc
        if array.shape != expected:
            per = f"one row per frame ({frames}) of " if factor in TRAJECTORY_FACTORS else ""
            raise ValueError(
                f"factors[{factor!r}] has shape {list(array.shape)}; expected {list(expected)}:"
                f" {per}the {width} values {list(factor_names[factor])}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"factors[{factor!r}] holds NaN or infinite values; factors must be finite")
        checked[factor] = array
    return checked


def _image_size(files: DatasetFiles, name: str) -> tuple[int, int]:
    """(width, height) from an image's header, without decoding its pixels."""
    try:
        with files.open(name) as file, Image.open(file) as image:
            return image.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{name} is not a readable png/jpg ({exc})") from exc


def _probe_file(files: DatasetFiles, name: str) -> tuple[int, tuple[int, int], float | None]:
    """Frame count, (width, height) and frame rate of a video file, from its headers."""
    with files.video_stream(name) as (container, stream):
        frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        rate = stream.average_rate or stream.guessed_rate
        return frames, (stream.width, stream.height), float(rate) if rate else None


def _frame_files(entry: str, names: list[str], skipped: list[tuple[str, str]]) -> list[str]:
    """The png/jpg names of a frame folder in natural order; the others go to `skipped`."""
    images = []
    for name in names:
        if PurePosixPath(name).suffix.lower() in FRAME_SUFFIXES and "/" not in name:
            images.append(name)
        else:
            skipped.append((f"{entry}/{name}", f"not a {'/'.join(FRAME_SUFFIXES)} frame; ignored"))
    return sorted(images, key=lambda n: natural_key(PurePosixPath(n)))


def _probe_folder(files: DatasetFiles, name: str, frames: list[str]) -> tuple[int, tuple[int, int], None]:
    """Frame count and the (width, height) every frame header of a frame folder states."""
    if not frames:
        raise ValueError("the folder holds no png/jpg frame")
    size = None
    for frame in frames:
        frame_size = _image_size(files, f"{name}/{frame}")
        if size is not None and frame_size != size:
            raise ValueError(
                f"frame {frame} is {frame_size[0]}x{frame_size[1]} but {frames[0]} is {size[0]}x{size[1]};"
                " the frames of a video share one size"
            )
        size = frame_size
    return len(frames), size, None


def parse_index(data: bytes, where: str) -> dict[str, Any]:
    """The header of a dataset.json (fps, resolution, factor_names) and its video records, checked."""
    try:
        meta = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{where} is not valid JSON ({exc}); restore it, or delete it to index by folders"
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f'{where} is not a stylevid dataset index: it has no "format": "{FORMAT}"')
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(
            f"{where} has format_version {version!r} (a {type(version).__name__}); it must be an integer,"
            f' 1 to {FORMAT_VERSION}: write it as a JSON number, e.g. "format_version": {FORMAT_VERSION}'
        )
    if not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{where} has format_version {version}; this stylevid reads 1 to {FORMAT_VERSION}:"
            " upgrade stylevid for newer datasets"
        )
    fps, resolution, videos = meta.get("fps"), meta.get("resolution"), meta.get("videos")
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"{where} has fps {fps!r}; expected a positive number")
    if not isinstance(resolution, int) or isinstance(resolution, bool) or resolution < 1:
        raise ValueError(f"{where} has resolution {resolution!r}; expected a positive int")
    if not isinstance(videos, list):
        raise ValueError(f"{where} has no list of videos")
    try:
        factor_names = check_factor_names(meta.get("factor_names"))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    return {"fps": float(fps), "resolution": resolution, "factor_names": factor_names, "videos": videos}


def _listed_entry(record: Any, factor_names: dict[str, tuple[str, ...]] | None) -> VideoEntry:
    """The VideoEntry of a dataset.json video record (frame files filled in later); ValueError if bad."""
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        raise ValueError(f"malformed video record {str(record)[:80]!r} in {INDEX_FILE}")
    frames, source = record.get("frames"), record.get("source")
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise ValueError(f"{INDEX_FILE} gives {frames!r} frames; expected a positive int")
    name = record["name"]
    return VideoEntry(
        name, frames, check_factors(record.get("factors"), frames, factor_names), "frames", name, (), source
    )


def index_digest(index: DatasetIndex) -> str:
    """A sha256 (hex) of what an index holds: header, and every video's location, frames and factors."""
    digest = hashlib.sha256()
    header = [index.fps, index.resolution, index.factor_names]
    digest.update(json.dumps(header, sort_keys=True).encode())
    for entry in index.videos:
        digest.update(
            json.dumps([entry.name, entry.kind, entry.location, entry.frames, entry.files]).encode()
        )
        for factor in sorted(entry.factors or {}):
            digest.update(entry.factors[factor].tobytes())
    return digest.hexdigest()


def read_index(path: str | os.PathLike) -> DatasetIndex:
    """Index a dataset directory, .zip or folder of video files; unusable videos go to `skipped`, with why."""
    files = DatasetFiles(path)
    try:
        return _index(files)
    finally:
        files.close()


def _index(files: DatasetFiles) -> DatasetIndex:
    root_files, folders = files.listing()
    skipped: list[tuple[str, str]] = []
    listed: dict[str, VideoEntry] = {}
    meta = None
    if INDEX_FILE in root_files:
        meta = parse_index(files.read(INDEX_FILE), f"{files.path}/{INDEX_FILE}")
        for record in meta["videos"]:
            try:
                entry = _listed_entry(record, meta["factor_names"])
            except ValueError as exc:
                skipped.append((str(record.get("name", "?") if isinstance(record, dict) else "?"), str(exc)))
                continue
            listed[entry.name] = entry
    factor_names = meta["factor_names"] if meta else None
    # (entry, (frames, (width, height), fps)) for every video that could be probed.
    candidates: list[tuple[VideoEntry, tuple[int, tuple[int, int], float | None]]] = []
    for name in listed:
        if name not in folders:
            skipped.append((name, f"listed in {INDEX_FILE} but its folder is missing"))
    # dataset.json's order (the order written), then the folders it does not list.
    for name in [*(n for n in listed if n in folders), *(n for n in folders if n not in listed)]:
        children = folders[name]
        entry = listed.get(name, VideoEntry(name, 0, None, "frames", name))
        if name not in listed and factor_names is not None:
            skipped.append(
                (name, f"not listed in {INDEX_FILE}, so its factors are unknown; add it with DatasetWriter")
            )
            continue
        frames = _frame_files(name, children, skipped)
        try:
            probe = _probe_folder(files, name, frames)
        except ValueError as exc:
            skipped.append((name, str(exc)))
            continue
        if name in listed and probe[0] != entry.frames:
            skipped.append((name, f"holds {probe[0]} frames but {INDEX_FILE} says {entry.frames}"))
            continue
        standard = frames == [frame_name(t) for t in range(len(frames))]
        entry = VideoEntry(
            name, probe[0], entry.factors, "frames", name, () if standard else tuple(frames), entry.source
        )
        candidates.append((entry, probe))
    for file in root_files:
        if file == INDEX_FILE:
            continue
        stem, suffix = PurePosixPath(file).stem, PurePosixPath(file).suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            skipped.append((file, f"not a video file ({'/'.join(VIDEO_SUFFIXES)}) or frame folder; ignored"))
        elif factor_names is not None:
            skipped.append((file, f"not listed in {INDEX_FILE}, so its factors are unknown"))
        elif stem in folders:
            skipped.append((file, f"a frame folder is also named {stem!r}; rename one of them"))
        else:
            try:
                probe = _probe_file(files, file)
            except ValueError as exc:
                skipped.append((file, str(exc)))
                continue
            candidates.append((VideoEntry(stem, probe[0], None, "file", file), probe))
    fps = meta["fps"] if meta else _common_fps(files.path, candidates)
    resolution = meta["resolution"] if meta else _common_resolution(candidates)
    videos = []
    for entry, (_, (width, height), _) in candidates:
        if width != height:
            skipped.append((entry.location, f"is {width}x{height}, not square: crop it (stylevid prepare)"))
        elif width != resolution:
            skipped.append(
                (
                    entry.location,
                    f"is {width}x{width}, but the dataset is {resolution}x{resolution}: resize it",
                )
            )
        elif entry.frames < 1:
            skipped.append((entry.location, "has no frames"))
        else:
            videos.append(entry)
    return DatasetIndex(files.path, fps, resolution, factor_names, tuple(videos), tuple(skipped))


def _common_fps(path: Path, candidates: list[tuple[VideoEntry, tuple]]) -> float:
    """The most common frame rate of the video files; DEFAULT_FPS (with a warning) when none states one."""
    rates = Counter(probe[2] for _, probe in candidates if probe[2])
    if not rates:
        warnings.warn(
            f"{path} has no {INDEX_FILE} and no video file stating a frame rate: assuming {DEFAULT_FPS} fps"
            " (write the dataset with DatasetWriter to record its rate)",
            stacklevel=3,
        )
        return DEFAULT_FPS
    if len(rates) > 1:
        warnings.warn(
            f"the videos of {path} have different frame rates {sorted(rates)}; using the most common,"
            f" {rates.most_common(1)[0][0]} fps",
            stacklevel=3,
        )
    return rates.most_common(1)[0][0]


def _common_resolution(candidates: list[tuple[VideoEntry, tuple]]) -> int:
    """The side of the most common square frame size (0 when there is none)."""
    sizes = Counter(probe[1][0] for _, probe in candidates if probe[1][0] == probe[1][1])
    return sizes.most_common(1)[0][0] if sizes else 0
