"""Face detection and the face crop: MTCNN on a downscaled copy of a frame, and square crops of faces.

The detector is facenet-pytorch's MTCNN on the CPU (its weights ship inside the package). A frame is
searched on a copy whose longest side is at most DETECT_SIDE pixels; faces below MIN_PROB are left out,
and the boxes and landmarks come back in the frame's own pixels, largest face first.

The dataset's framing (`stylevid prepare`) is a square of side DEFAULT_MARGIN x the face box's longer
side, centred LIFT x the box height above the box centre: measured on MTCNN's box of the astronaut
photo, FFHQ's crop is 1.52 x the box, centred 0.10 x its height higher (hair to chin). Where a crop
leaves the frame the frame is extended by reflection, as FFHQ does: a constant border would teach a GAN
a hard edge that real faces never have.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image

# MTCNN takes ~80 ms per 400x300 frame on one core; faces in talking-head videos stay far above its 20 px
# smallest face at this size.
DETECT_SIDE = 400
MIN_PROB = 0.9  # MTCNN's own last threshold (0.7) lets through face-like texture
DEFAULT_MARGIN = 1.5
LIFT = 0.1


@functools.cache
def face_detector():
    """MTCNN on the CPU, built once per process (its weights ship inside facenet-pytorch)."""
    # Imported here: facenet-pytorch imports torchvision, seconds that every `stylevid` command would pay.
    from facenet_pytorch import MTCNN  # noqa: PLC0415

    return MTCNN(device="cpu", select_largest=True)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after)."""
    # MTCNN's small convolutions gain little from threads, and lose up to 15x when the cores are shared
    # (with the other workers, or anything else): every thread then waits for the slowest.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def detect_faces(detector, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Faces of probability >= MIN_PROB in a uint8 [H, W, 3] frame, largest first, in frame pixels.

    Returns boxes float64 [K, 4] (x0, y0, x1, y1) and landmarks float64 [K, 5, 2] (x, y of the eyes,
    the nose and the mouth's corners); K = 0 also where the frame is smaller than MTCNN's smallest face.
    """
    height, width = frame.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(height, width))
    small = (round(width * scale), round(height * scale))
    no_faces = np.zeros((0, 4)), np.zeros((0, 5, 2))
    if min(small) < detector.min_face_size:
        return no_faces  # MTCNN fails on images smaller than its smallest face, which cannot hold one
    image = (
        frame if scale == 1 else np.asarray(Image.fromarray(frame).resize(small, Image.Resampling.BILINEAR))
    )
    boxes, probs, points = detector.detect(image, landmarks=True)
    if boxes is None:
        return no_faces
    keep = np.asarray(list(probs), dtype=np.float64) >= MIN_PROB
    sx, sy = width / small[0], height / small[1]
    boxes = np.asarray(boxes, dtype=np.float64)[keep] * [sx, sy, sx, sy]
    points = np.asarray(points, dtype=np.float64)[keep] * [sx, sy]
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
    return boxes[order], points[order]


def largest_faces(images: np.ndarray) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """Per uint8 [M, H, W, 3] image, its largest face (box [4], landmarks [5, 2]) as detect_faces, or None."""
    detector = face_detector()
    found = []
    with one_thread():
        for image in images:
            boxes, points = detect_faces(detector, image)
            found.append((boxes[0], points[0]) if len(boxes) else None)
    return found


def face_square(boxes: np.ndarray, margin: float = DEFAULT_MARGIN, lift: float = LIFT) -> np.ndarray:
    """Crops [..., 3] (centre x, centre y, side) of face boxes [..., 4]: margin x the longer side, lifted."""
    boxes = np.asarray(boxes, dtype=np.float64)
    x0, y0, x1, y1 = np.moveaxis(boxes, -1, 0)
    return np.stack(
        [(x0 + x1) / 2, (y0 + y1) / 2 - lift * (y1 - y0), margin * np.maximum(x1 - x0, y1 - y0)], -1
    )


def crop_face(frame: np.ndarray, cx: float, cy: float, side: float, resolution: int) -> np.ndarray:
    """uint8 [R, R, 3]: the square (centre cx, cy, side; sub-pixel) of a uint8 [H, W, 3] frame, resized."""
    height, width = frame.shape[:2]
    x0, y0 = cx - side / 2, cy - side / 2
    left, top = math.floor(x0), math.floor(y0)
    right, bottom = math.ceil(x0 + side), math.ceil(y0 + side)
    patch = frame[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)]
    pad = ((max(-top, 0), max(bottom - height, 0)), (max(-left, 0), max(right - width, 0)), (0, 0))
    if any(any(p) for p in pad):
        patch = np.pad(patch, pad, mode="reflect")
    box = (x0 - left, y0 - top, x0 - left + side, y0 - top + side)
    image = Image.fromarray(patch).resize((resolution, resolution), Image.Resampling.LANCZOS, box=box)
    return np.asarray(image)
