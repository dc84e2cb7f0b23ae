"""The source videos of `prepare`: finding them under a folder, and their names in the dataset."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

SOURCE_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
CLIP_SEP = ".clip"
MAX_NAME_BYTES = 150  # DatasetWriter takes 200; room for the collision hash and clip suffix


def find_videos(source: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[Path]:
    """Video files under `source` (or `source` itself), sorted; hidden ones and any in `exclude` left out."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"no folder or video at --source {source}; check the path")
    excluded = Path(exclude).resolve() if exclude is not None else None
    found = []
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        # Hidden files include macOS "._x.mp4" resource forks and our own writers' temporary files.
        if any(part.startswith(".") for part in relative.parts) or path.suffix.lower() not in SOURCE_SUFFIXES:
            continue
        if excluded is not None and excluded in path.resolve().parents:
            continue
        if path.is_file():
            found.append(path)
    return sorted(found, key=lambda path: path.relative_to(source).as_posix())


def video_names(sources: Iterable[str]) -> list[str]:
    """Unique dataset names for '/'-separated relative paths: 'a/b c.mp4' -> 'a__b_c' (no '.' in names)."""
    names, used = [], set()
    for source in sources:
        parts = PurePosixPath(source).with_suffix("").parts
        name = "__".join(re.sub(r"[^A-Za-z0-9_-]", "_", part) for part in parts)
        digest = hashlib.sha1(source.encode()).hexdigest()[:8]
        if len(name) > MAX_NAME_BYTES:
            name = f"{name[:MAX_NAME_BYTES]}-{digest}"
        if name in used:
            name = f"{name}-{digest}"
        used.add(name)
        names.append(name)
    return names


def clip_names(name: str, clips: int) -> list[str]:
    """Dataset names of a video's clips: the name itself for one, name.clip1, name.clip2, ... for several."""
    return [name] if clips == 1 else [f"{name}{CLIP_SEP}{k}" for k in range(1, clips + 1)]
