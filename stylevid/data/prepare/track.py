"""Following the face through a video (steps 2-4 of the package doc): boxes, clips, smoothed crops."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylevid.data.faces import DEFAULT_MARGIN, detect_faces, face_detector, face_square, one_thread
from stylevid.data.prepare.decode import decode_frames, source_fps
from stylevid.data.prepare.report import BRIEF_FACE, NO_FACE, TOO_SHORT, UnusableVideo

TRACK_IOU = 0.3
MAX_GAP_SECONDS = 0.5
SMOOTH_SECONDS = 0.6
SMOOTH_ORDER = 2


@dataclass
class FaceTrack:
    """The face in each frame of one video and the smoothed square crops of its clips, in source pixels."""

    boxes: np.ndarray  # [T, 4] face box x0, y0, x1, y1; NaN where no face was found
    crops: np.ndarray  # [T, 3] crop centre x, centre y, side; NaN outside the clips
    clips: list[tuple[int, int]]  # [start, stop) frame ranges, each one dataset video
    size: tuple[int, int]  # (height, width) of the source frames
    fps: float  # the rate the frames were taken at


def _iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Intersection over union of [N, 4] boxes with one [4] box (x0, y0, x1, y1)."""
    size = np.clip(np.minimum(boxes[:, 2:], box[2:]) - np.maximum(boxes[:, :2], box[:2]), 0, None)
    inter = size[:, 0] * size[:, 1]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (areas + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def _follow(detector, frame: np.ndarray, previous: np.ndarray | None) -> np.ndarray | None:
    """The face box [4] (x0, y0, x1, y1, frame pixels) to follow in a uint8 [H, W, 3] frame, or None."""
    boxes, _ = detect_faces(detector, frame)
    if not len(boxes):
        return None
    if previous is not None:
        overlap = _iou(boxes, previous)
        if overlap.max() >= TRACK_IOU:
            return boxes[overlap.argmax()]
    return boxes[0]


def face_clips(found: np.ndarray, max_gap: int, min_frames: int) -> list[tuple[int, int]]:
    """[start, stop) runs of frames with a face (found [T] bool) across gaps <= max_gap, of >= min_frames."""
    index = np.flatnonzero(found)
    ends = np.flatnonzero(np.diff(index) > max_gap + 1)
    starts, stops = np.r_[index[0], index[ends + 1]], np.r_[index[ends], index[-1]] + 1
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b - a >= min_frames]


def smooth_crops(boxes: np.ndarray, margin: float, window: int) -> np.ndarray:
    """[n, 3] crop centre x, y and side from [n, 4] face boxes (NaN rows interpolated), smoothed in time."""
    t = np.arange(len(boxes))
    ok = ~np.isnan(boxes[:, 0])
    crops = face_square(np.stack([np.interp(t, t[ok], boxes[ok, i]) for i in range(4)], 1), margin)
    window = min(window, len(boxes) - 1 + len(boxes) % 2)  # odd, at most the clip's length
    if window <= SMOOTH_ORDER:
        return crops
    # Imported here: scipy.signal takes ~2 s to import, which every `stylevid` command would pay.
    from scipy.signal import savgol_filter  # noqa: PLC0415

    return savgol_filter(crops, window, SMOOTH_ORDER, axis=0, mode="interp")


def track_faces(
    path: str | os.PathLike,
    fps: float | None = None,
    margin: float = DEFAULT_MARGIN,
    min_frames: int = 16,
    detector=None,
) -> FaceTrack:
    """Each frame's face box and smoothed crop at `fps` (None: the file's own); UnusableVideo if none."""
    path = Path(path)
    fps = source_fps(path) if fps is None else fps
    detector = detector or face_detector()
    boxes, previous, size = [], None, (0, 0)
    with one_thread():
        for frame in decode_frames(path, fps):
            size = frame.shape[:2]
            box = _follow(detector, frame, previous)
            previous = previous if box is None else box
            boxes.append(np.full(4, np.nan) if box is None else box)
    if len(boxes) < min_frames:
        raise UnusableVideo(TOO_SHORT, f"{len(boxes)} frames at {fps:g} fps; min_frames={min_frames}")
    boxes = np.stack(boxes)
    found = ~np.isnan(boxes[:, 0])
    if not found.any():
        raise UnusableVideo(NO_FACE, f"no face in {len(boxes)} frames")
    max_gap = round(MAX_GAP_SECONDS * fps)
    clips = face_clips(found, max_gap, min_frames)
    if not clips:
        longest = max(b - a for a, b in face_clips(found, max_gap, 1))
        raise UnusableVideo(
            BRIEF_FACE,
            f"the longest run with a face is {longest} frames (gaps up to {max_gap} bridged);"
            f" min_frames={min_frames}",
        )
    crops = np.full((len(boxes), 3), np.nan)
    window = 2 * round(SMOOTH_SECONDS * fps / 2) + 1
    for a, b in clips:
        crops[a:b] = smooth_crops(boxes[a:b], margin, window)
    return FaceTrack(boxes, crops, clips, size, fps)
