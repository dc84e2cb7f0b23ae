"""The dataset writer: videos (uint8 frames, optional factors) into a dataset folder or .zip, crash-safe.

The layout and dataset.json are those of stylevid.data.index. Writing is safe against crashes, kills
and full disks. In a directory each video is written to a hidden temporary folder and renamed into
place when complete, and dataset.json is replaced atomically, so a killed run is resumed by opening a
DatasetWriter on the same path: `has_video` says what is complete. A .zip is built as a hidden
temporary zip beside the target and renamed onto it by `close` (also when an exception leaves the
`with` block, so Ctrl-C keeps the videos written so far); a killed zip run leaves no zip and restarts,
and a writer opened on a complete zip extends it. One writer per dataset at a time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stylevid.atomic import write_atomically
from stylevid.data.index import (
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILE,
    VideoEntry,
    check_factor_names,
    check_factors,
    frame_name,
    parse_index,
)

# Decoding costs the same at every zlib level; level 1 writes several times faster than the default 6
# for files about 10% larger.
PNG_COMPRESS_LEVEL = 1
# dataset.json grows with the dataset, so it is rewritten after a video only when the last rewrite took
# under 1/INDEX_REWRITE_RATIO of the time since: at most ~10% of the writing time at any size.
INDEX_REWRITE_RATIO = 10
_TEMP_SUFFIX = ".tmp"


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
        self._unchanged: set[str] | None = None  # a resumed zip's complete videos, until one is added
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
        meta = parse_index(data, where)
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
                    self._unchanged = set(self._records)
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
                    temp / frame_name(count), format="PNG", compress_level=PNG_COMPRESS_LEVEL
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
        if self._unchanged is not None and set(self._records) == self._unchanged:
            # Resumed and nothing added: the zip on disk is already this dataset. Keeping it (not
            # rewriting 36 MB) also lets several processes open one finished dataset at once: each
            # opening removes the others' temporary files, which a rewrite would need.
            self._abort()
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
