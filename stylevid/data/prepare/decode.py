"""Decoding a source video with PyAV at the dataset's frame rate (frames repeated or dropped by timestamp)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np

from stylevid.data.prepare.report import CORRUPT, UnusableVideo
from stylevid.video import open_video_stream, video_fps


def source_fps(path: Path) -> float:
    """The frame rate of a video file, or UnusableVideo (corrupt) if it has none that can be read."""
    try:
        return video_fps(path)
    except ValueError as exc:
        raise UnusableVideo(CORRUPT, str(exc)) from exc


def decode_frames(path: Path, fps: float | None) -> Iterator[np.ndarray]:
    """uint8 [H, W, 3] frames of a video file; with `fps` (if not its own), resampled by their timestamps."""
    try:
        with open_video_stream(path) as (container, stream):
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            if fps is None or math.isclose(fps, rate, rel_tol=1e-6):
                for frame in container.decode(stream):
                    yield frame.to_ndarray(format="rgb24")
            else:
                yield from _resample(container.decode(stream), fps, rate or fps)
    except UnusableVideo:
        raise
    except ValueError as exc:  # open_video_stream's: no video stream, or the decoder failed
        raise UnusableVideo(CORRUPT, str(exc)) from exc


def _resample(frames: Iterable[av.VideoFrame], fps: float, rate: float) -> Iterator[np.ndarray]:
    """uint8 [H, W, 3] frames at `fps` from frames at ~`rate`: frame k is the one shown at time k / fps."""
    held, start, shown, slot = None, None, 0.0, 0
    for frame in frames:
        if frame.time is None:
            raise UnusableVideo(CORRUPT, "its frames have no timestamps, so they cannot be resampled")
        start = frame.time if start is None else start
        shown = frame.time - start
        # The slots before this frame's time show the frame before it (a slot at the same time shows this).
        while slot < shown * fps - 1e-6:
            yield held
            slot += 1
        held = frame.to_ndarray(format="rgb24")
    # The last frame stays on screen for one frame period.
    while held is not None and slot < (shown + 1 / rate) * fps - 1e-6:
        yield held
        slot += 1
