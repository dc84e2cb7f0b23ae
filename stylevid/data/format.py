"""The stylevid dataset format: write videos as frame folders (a folder or .zip), index datasets, read frames.

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

Writing is safe against crashes, kills and full disks. In a directory each video is written to a hidden
temporary folder and renamed into place when complete, and dataset.json is replaced atomically, so a
killed run is resumed by opening a DatasetWriter on the same path: `has_video` says what is complete.
A .zip is built as a hidden temporary zip beside the target and renamed onto it by `close` (also when an
exception leaves the `with` block, so Ctrl-C keeps the videos written so far); a killed zip run leaves no
zip and restarts, and a writer opened on a complete zip extends it. One writer per dataset at a time.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import time
import uuid
import warnings
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import av
import numpy as np
from PIL import Image

from stylevid.atomic import write_atomically
from stylevid.video import FRAME_SUFFIXES, natural_key

FORMAT = "stylevid-dataset"
FORMAT_VERSION = 1
INDEX_FILE = "dataset.json"
DEFAULT_FPS = 25.0
FACTORS = ("identity", "pose", "lighting", "background")
PER_FRAME_FACTORS = ("pose", "lighting")
POSE_NAMES = ("yaw", "pitch", "roll")
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


# The PyAV formats of stylevid.video; gifs are palette-quantised previews, not training data.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov")
# Decoding costs the same at every zlib level; level 1 writes several times faster than the default 6
# for files about 10% larger.
PNG_COMPRESS_LEVEL = 1
# dataset.json grows with the dataset, so it is rewritten after a video only when the last rewrite took
# under 1/INDEX_REWRITE_RATIO of the time since: at most ~10% of the writing time at any size.
INDEX_REWRITE_RATIO = 10
_TEMP_SUFFIX = ".tmp"


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
        return f"{self.location}/{self.files[t] if self.files else _frame_name(t)}"


@dataclass(frozen=True, eq=False)
class DatasetIndex:
    """What a dataset holds: its usable videos, and (path in the dataset, reason) for what was skipped."""

    path: Path
    fps: float
    resolution: int
    factor_names: dict[str, tuple[str, ...]] | None
    videos: tuple[VideoEntry, ...]
    skipped: tuple[tuple[str, str], ...]


def _frame_name(t: int) -> str:
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
            isinstance(names, str)
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
        expected = (frames, width) if factor in PER_FRAME_FACTORS else (width,)
        try:
            array = np.asarray(factors[factor], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"factors[{factor!r}] is not an array of numbers: {exc}") from exc
        if array.shape != expected:
            per = f"one row per frame ({frames}) of " if factor in PER_FRAME_FACTORS else ""
            raise ValueError(
                f"factors[{factor!r}] has shape {list(array.shape)}; expected {list(expected)}:"
                f" {per}the {width} values {list(factor_names[factor])}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"factors[{factor!r}] holds NaN or infinite values; factors must be finite")
        checked[factor] = array
    return checked


def _check_name(name: str) -> None:
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or name == INDEX_FILE
        or any(c in name for c in "/\\\0")
        or len(name.encode()) > 200
    ):
        raise ValueError(
            f"video name {name!r} cannot be a folder name: use a non-empty str of at most 200 bytes without"
            f" '/', '\\' or a leading '.', other than {INDEX_FILE!r} (such as 'video_00000')"
        )


class DatasetFiles:
    """Read access to a dataset directory's or .zip's files by '/'-separated path; pickles without handles."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"no dataset at {self.path}; check the path")
        self.is_zip = self.path.is_file()
        if self.is_zip and not zipfile.is_zipfile(self.path):
            raise ValueError(
                f"{self.path} is a file but not a zip: a dataset is a folder or a .zip of frame folders"
            )
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1

    def __getstate__(self) -> dict[str, Any]:
        # An open zip handle must not travel to DataLoader workers: each process opens its own.
        return {**self.__dict__, "_zip": None, "_zip_pid": -1}

    def _archive(self) -> zipfile.ZipFile:
        # A forked worker inherits the parent's handle, whose file offset the processes would share.
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def close(self) -> None:
        """Close the zip handle of this process, if open."""
        if self._zip is not None and self._zip_pid == os.getpid():
            self._zip.close()
        self._zip = None

    def listing(self) -> tuple[list[str], dict[str, list[str]]]:
        """The root's files, and each root folder's file names (names starting with '.' left out)."""
        if self.is_zip:
            paths = [PurePosixPath(n).parts for n in self._archive().namelist() if not n.endswith("/")]
        else:
            paths = []
            for root, dirs, files in os.walk(self.path):
                # Skips the hidden temporary folders of a writer at work.
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                paths += [(*Path(root).relative_to(self.path).parts, f) for f in files]
        root_files, folders = [], {}
        for parts in paths:
            if any(part.startswith(".") for part in parts):
                continue
            if len(parts) == 1:
                root_files.append(parts[0])
            else:
                folders.setdefault(parts[0], []).append("/".join(parts[1:]))
        if not self.is_zip:
            # Empty folders hold no file, but are still videos (with no frames) to report.
            for entry in os.scandir(self.path):
                if entry.is_dir() and not entry.name.startswith("."):
                    folders.setdefault(entry.name, [])
        return sorted(root_files), {name: folders[name] for name in sorted(folders)}

    def read(self, name: str) -> bytes:
        """The bytes of file `name`."""
        if self.is_zip:
            return self._archive().read(name)
        return (self.path / name).read_bytes()

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """File `name` opened for reading bytes, seekable; only what is read is read from disk."""
        with self._archive().open(name) if self.is_zip else open(self.path / name, "rb") as file:
            yield file


def _decode_image(data: bytes, where: str) -> np.ndarray:
    """uint8 [H, W, 3] of png/jpg bytes; ValueError naming `where` when they are not a decodable image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot decode frame {where}: {exc}; the file is damaged or not an image") from exc


def _image_size(files: DatasetFiles, name: str) -> tuple[int, int]:
    """(width, height) from an image's header, without decoding its pixels."""
    try:
        with files.open(name) as file, Image.open(file) as image:
            return image.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"{name} is not a readable png/jpg ({exc})") from exc


@contextlib.contextmanager
def _video_stream(files: DatasetFiles, name: str) -> Iterator[tuple[Any, Any]]:
    """The PyAV container of video file `name` and its first video stream; ValueError naming it on failure."""
    try:
        # PyAV reads a path by itself, faster than through a Python file object.
        source = files.open(name) if files.is_zip else contextlib.nullcontext(str(files.path / name))
        with source as file, av.open(file) as container:
            if not container.streams.video:
                raise ValueError(f"{name} has no video stream")
            yield container, container.streams.video[0]
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(f"cannot decode {name}: {exc}; is the file complete and a video?") from exc


def _probe_file(files: DatasetFiles, name: str) -> tuple[int, tuple[int, int], float | None]:
    """Frame count, (width, height) and frame rate of a video file, from its headers."""
    with _video_stream(files, name) as (container, stream):
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


def _parse_index(data: bytes, where: str) -> dict[str, Any]:
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
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{where} has format_version {version!r}; this stylevid reads 1 to {FORMAT_VERSION}:"
            " upgrade stylevid for newer datasets"
        )
    fps, resolution, videos = meta.get("fps"), meta.get("resolution"), meta.get("videos")
    if not isinstance(fps, int | float) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"{where} has fps {fps!r}; expected a positive number")
    if not isinstance(resolution, int) or resolution < 1:
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
    if not isinstance(frames, int) or frames < 1:
        raise ValueError(f"{INDEX_FILE} gives {frames!r} frames; expected a positive int")
    name = record["name"]
    return VideoEntry(
        name, frames, check_factors(record.get("factors"), frames, factor_names), "frames", name, (), source
    )


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
        meta = _parse_index(files.read(INDEX_FILE), f"{files.path}/{INDEX_FILE}")
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
        standard = frames == [_frame_name(t) for t in range(len(frames))]
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


def read_frames(files: DatasetFiles, entry: VideoEntry, times: Sequence[int]) -> np.ndarray:
    """uint8 [K, H, W, 3]: frames `times` (increasing indices) of `entry`; ValueError if unreadable."""
    if entry.kind == "frames":
        frames = []
        for t in times:
            name = entry.frame_path(t)
            try:
                data = files.read(name)
            except (OSError, KeyError, zipfile.BadZipFile) as exc:
                raise ValueError(f"cannot read frame {name}: {exc}") from exc
            frames.append(_decode_image(data, name))
    else:
        frames = _decode_file_frames(files, entry, times)
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise ValueError(f"frames {list(times)} of {entry.location} have different sizes {sorted(shapes)}")
    return np.stack(frames)


def _decode_file_frames(files: DatasetFiles, entry: VideoEntry, times: Sequence[int]) -> list[np.ndarray]:
    """Frames `times` of a video file: seek to the keyframe before the first, decode up to the last."""
    found: dict[int, np.ndarray] = {}
    wanted = set(times)
    with _video_stream(files, entry.location) as (container, stream):
        rate = stream.average_rate or stream.guessed_rate
        start = stream.start_time or 0
        if not rate:
            raise ValueError(f"{entry.location} does not state its frame rate, so frames cannot be located")
        # Constant frame rate assumed: frame index = timestamp x rate.
        first = min(times)
        if first > 0:
            container.seek(start + int(first / rate / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.pts is None:
                raise ValueError(f"{entry.location} has frames without timestamps; re-encode it (ffmpeg)")
            index = round((frame.pts - start) * stream.time_base * rate)
            if index in wanted:
                found[index] = frame.to_ndarray(format="rgb24")
            if index >= max(times):
                break
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"{entry.location} has no decodable frames {missing} (of {entry.frames} indexed)")
    return [found[t] for t in times]


class DatasetWriter:
    """Write videos (uint8 [T, H, W, 3] frames, optional factors) to a dataset folder or .zip, crash-safe."""

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        resolution: int,
        factor_names: Mapping[str, Sequence[str]] | None = None,
    ):
        if not isinstance(fps, int | float) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps={fps!r} must be a positive number of frames per second")
        if not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"resolution={resolution!r} must be a positive int (frames are resolution²)")
        self.path = Path(path)
        self.fps = float(fps)
        self.resolution = resolution
        self.factor_names = check_factor_names(factor_names)
        self.is_zip = self.path.suffix.lower() == ".zip"
        # dataset.json records of the complete videos, by name, in the order written.
        self._records: dict[str, dict[str, Any]] = {}
        self._closed = False
        self._failure: BaseException | None = None
        self._saved_at, self._save_seconds = time.monotonic(), 0.0
        self._token = uuid.uuid4().hex[:12]
        if self.is_zip:
            self._open_zip()
        else:
            self._open_folder()

    # --- opening and resuming ---

    def _temps(self) -> Iterator[Path]:
        """Temporary files and folders that writers leave for this dataset (a kill leaves them behind)."""
        if self.is_zip:
            return self.path.parent.glob(f".{self.path.name}.*{_TEMP_SUFFIX}")
        return self.path.glob(f".*{_TEMP_SUFFIX}")

    def _remove_temps(self) -> None:
        for temp in self._temps():
            if temp.is_dir():
                shutil.rmtree(temp, ignore_errors=True)
            else:
                temp.unlink(missing_ok=True)

    def _resume(self, data: bytes, where: str) -> None:
        """Take the complete videos of an existing dataset, refusing one written with other settings."""
        meta = _parse_index(data, where)
        mine = {"fps": self.fps, "resolution": self.resolution, "factor_names": self.factor_names}
        theirs = {key: meta[key] for key in mine}
        if theirs != mine:
            raise ValueError(
                f"{self.path} already holds a dataset with {theirs}, but this writer has {mine}: write to a"
                " new path, or pass the same settings to resume it"
            )
        for record in meta["videos"]:
            # A malformed record is not a complete video: leaving it out makes it be written again.
            if isinstance(record, dict) and isinstance(record.get("name"), str):
                self._records[record["name"]] = record

    def _open_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(
                f"{self.path} is a file; a dataset is written to a folder or a path ending in .zip"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self._remove_temps()
        index = self.path / INDEX_FILE
        if index.exists():
            self._resume(index.read_bytes(), str(index))
            # A video whose folder was deleted since is no longer complete.
            self._records = {n: r for n, r in self._records.items() if (self.path / n).is_dir()}
        elif any(not p.name.startswith(".") for p in self.path.iterdir()):
            raise ValueError(
                f"{self.path} is not empty and has no {INDEX_FILE}, so it is not a stylevid dataset to"
                " resume: write to a new or empty folder"
            )
        # Written now, so that a folder with videos always has an index to resume from.
        self._save_index()

    def _open_zip(self) -> None:
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder; a .zip dataset must be a file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_temps()
        self._zip_temp = self.path.with_name(f".{self.path.name}.{self._token}{_TEMP_SUFFIX}")
        self._zip = zipfile.ZipFile(self._zip_temp, "w", zipfile.ZIP_STORED)
        try:
            if self.path.exists():
                with zipfile.ZipFile(self.path) as old:
                    self._resume(old.read(INDEX_FILE), f"{self.path}/{INDEX_FILE}")
                    for info in old.infolist():
                        if info.filename != INDEX_FILE:
                            self._zip.writestr(info, old.read(info))
        except BaseException as exc:
            self._abort()
            if isinstance(exc, KeyError | zipfile.BadZipFile):
                raise ValueError(
                    f"{self.path} exists but is not a stylevid dataset zip ({exc}): write to a new path"
                ) from exc
            raise

    # --- writing ---

    def has_video(self, name: str) -> bool:
        """Whether video `name` is completely written (so a resumed run can skip it)."""
        return name in self._records

    def add_video(
        self,
        name: str,
        frames: np.ndarray | Iterable[np.ndarray],
        factors: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> VideoEntry:
        """Write uint8 frames [T, H, W, 3] (or an iterable of [H, W, 3]) as video `name`, with its factors."""
        self._check_writable()
        _check_name(name)
        if name in self._records:
            raise ValueError(f"video {name!r} is already in {self.path}; check has_video(name) to skip it")
        if source is not None and not isinstance(source, str):
            raise TypeError(f"source={source!r} must be a str (where the video came from) or None")
        if isinstance(frames, np.ndarray):
            if frames.ndim != 4:
                raise ValueError(f"frames of {name!r} have shape {list(frames.shape)}; expected [T, H, W, 3]")
            # Checked before any frame is written, when the frame count is known up front.
            check_factors(factors, len(frames), self.factor_names)
        temp = self._temp_folder()
        temp.mkdir()
        try:
            count = 0
            for frame in frames:
                self._check_frame(frame, name, count)
                Image.fromarray(frame).save(
                    temp / _frame_name(count), format="PNG", compress_level=PNG_COMPRESS_LEVEL
                )
                count += 1
            if count == 0:
                raise ValueError(f"video {name!r} has no frames; pass at least one [H, W, 3] frame")
            checked = check_factors(factors, count, self.factor_names)
            self._commit(temp, name)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        record: dict[str, Any] = {
            "name": name,
            "frames": count,
            "factors": None if checked is None else {k: v.tolist() for k, v in checked.items()},
        }
        if source is not None:
            record["source"] = source
        self._records[name] = record
        if not self.is_zip and time.monotonic() - self._saved_at >= INDEX_REWRITE_RATIO * self._save_seconds:
            self._save_index()
        return VideoEntry(name, count, checked, "frames", name, (), source)

    def _check_writable(self) -> None:
        if self._failure is not None:
            raise RuntimeError(
                f"writing {self.path} failed earlier ({self._failure!r}); the zip is incomplete: fix the"
                " cause and write again"
            ) from self._failure
        if self._closed:
            raise RuntimeError(f"the DatasetWriter of {self.path} is closed; open a new one to add videos")

    def _check_frame(self, frame: Any, name: str, index: int) -> None:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
            kind = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
            raise TypeError(
                f"frame {index} of {name!r} is {kind}; expected a uint8 numpy array [H, W, 3]"
                " (stylevid.video.to_uint8 converts float frames in [-1, 1])"
            )
        size = self.resolution
        if frame.shape != (size, size, 3):
            raise ValueError(
                f"frame {index} of {name!r} has shape {list(frame.shape)} but the dataset's resolution is"
                f" {size}: expected [{size}, {size}, 3]; crop/resize the frames or change resolution"
            )

    def _temp_folder(self) -> Path:
        """A new hidden folder on the target's file system, for one video being written."""
        if self.is_zip:
            return self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}{_TEMP_SUFFIX}")
        return self.path / f".{uuid.uuid4().hex[:12]}{_TEMP_SUFFIX}"

    def _commit(self, temp: Path, name: str) -> None:
        """Move a completely written video folder into the dataset."""
        if not self.is_zip:
            final = self.path / name
            # A complete folder not yet in dataset.json (the writer was killed before rewriting it).
            if final.exists():
                shutil.rmtree(final)
            os.replace(temp, final)
            return
        try:
            for file in sorted(temp.iterdir()):
                self._zip.write(file, f"{name}/{file.name}")
        except BaseException as exc:
            # Members already in the zip cannot be taken back out: the zip can no longer be finished.
            self._failure = exc
            raise

    def _index_bytes(self) -> bytes:
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "fps": self.fps,
            "resolution": self.resolution,
            "factor_names": None
            if self.factor_names is None
            else {k: list(v) for k, v in self.factor_names.items()},
            "videos": list(self._records.values()),
        }
        return json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()

    def _save_index(self) -> None:
        started = time.monotonic()
        write_atomically(self.path / INDEX_FILE, self._index_bytes())
        self._saved_at = time.monotonic()
        self._save_seconds = self._saved_at - started

    # --- closing ---

    def close(self) -> None:
        """Finish the dataset: write dataset.json (a .zip is then renamed onto the target)."""
        if self._closed:
            return
        if self._failure is not None:
            self._abort()
            self._check_writable()
        self._closed = True
        if not self.is_zip:
            self._save_index()
            return
        try:
            self._zip.writestr(INDEX_FILE, self._index_bytes(), compress_type=zipfile.ZIP_DEFLATED)
            self._zip.close()
            with open(self._zip_temp, "rb") as file:
                os.fsync(file.fileno())
            os.replace(self._zip_temp, self.path)
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        """Drop an unfinishable zip: close it and delete the temporary file."""
        self._closed = True
        with contextlib.suppress(Exception):
            self._zip.close()
        self._zip_temp.unlink(missing_ok=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._failure is not None:
            # The exception in flight says why; finishing is impossible.
            self._abort()
            return
        # Also on an exception: every video written so far is complete, so the dataset stays usable.
        self.close()
