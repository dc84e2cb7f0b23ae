"""Read access to a dataset's files, in a folder or a .zip, by '/'-separated path; safe in DataLoader workers.

The index (stylevid.data.index) lists and probes a dataset through it, the frame reader
(stylevid.data.reader) reads frames through it. A zip is opened once per process, on first use, so a
DatasetFiles pickles without a handle and every worker process opens its own.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

import av

from stylevid.video import open_video_stream


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
        """The bytes of file `name`; ValueError naming the zip and member when the member is damaged."""
        if not self.is_zip:
            return (self.path / name).read_bytes()
        with self._damage_named(name):
            return self._archive().read(name)

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """File `name` opened for reading bytes, seekable; only what is read is read from disk."""
        if not self.is_zip:
            with open(self.path / name, "rb") as file:
                yield file
            return
        # Reading happens in the caller's block: a damaged member raises there, and is named here.
        with self._damage_named(name), self._archive().open(name) as file:
            yield file

    @contextlib.contextmanager
    def _damage_named(self, name: str) -> Iterator[None]:
        """zipfile's and zlib's errors on a damaged member as a ValueError naming the zip and the member."""
        try:
            yield
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ValueError(
                f"{self.path}: its member {name} is damaged ({exc}); re-create the zip (stylevid prepare or"
                " DatasetWriter), or copy it again from an intact source"
            ) from exc

    @contextlib.contextmanager
    def video_stream(self, name: str) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
        """PyAV container and first video stream of video file `name`; ValueError naming it on failure."""
        # PyAV reads a path by itself, faster than through a Python file object.
        source = self.open(name) if self.is_zip else contextlib.nullcontext(self.path / name)
        with source as file, open_video_stream(file) as opened:
            yield opened
