"""The frame reader: frames of an indexed video (a frame folder or a video file) as uint8 arrays."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from stylevid.data.files import DatasetFiles
from stylevid.data.index import VideoEntry


def read_frames(files: DatasetFiles, entry: VideoEntry, times: Sequence[int]) -> np.ndarray:
    """uint8 [K, H, W, 3]: frames `times` (increasing indices) of `entry`; ValueError if unreadable."""
    if entry.kind == "frames":
        frames = []
        for t in times:
            name = entry.frame_path(t)
            try:
                data = files.read(name)
            except (OSError, KeyError) as exc:
                raise ValueError(f"cannot read frame {name}: {exc}") from exc
            frames.append(_decode_image(data, name))
    else:
        frames = _decode_file_frames(files, entry, times)
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise ValueError(f"frames {list(times)} of {entry.location} have different sizes {sorted(shapes)}")
    return np.stack(frames)


def _decode_image(data: bytes, where: str) -> np.ndarray:
    """uint8 [H, W, 3] of png/jpg bytes; ValueError naming `where` when they are not a decodable image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot decode frame {where}: {exc}; the file is damaged or not an image") from exc


def _decode_file_frames(files: DatasetFiles, entry: VideoEntry, times: Sequence[int]) -> list[np.ndarray]:
    """Frames `times` of a video file: seek to the keyframe before the first, decode up to the last."""
    found: dict[int, np.ndarray] = {}
    wanted = set(times)
    with files.video_stream(entry.location) as (container, stream):
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
