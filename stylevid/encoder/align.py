"""References as the encoder reads them: decoded, the face found and cropped exactly as `stylevid
prepare` crops its datasets (MTCNN box -> faces.face_square -> faces.crop_face), at the encoder's size.

align='face' finds the largest face (a reference without one is an error naming it); align='none'
takes images that are already such crops (a dataset's frames) and only resizes them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from stylevid.data.faces import DEFAULT_MARGIN, crop_face, face_square, largest_faces
from stylevid.video import from_uint8

ALIGNMENTS = ("face", "none")


class NoFaceError(ValueError):
    """A reference in which no face was found."""


def _name(item, index: int) -> str:
    return str(item) if isinstance(item, (str, os.PathLike)) else f"reference {index}"


def decode_image(source: str | os.PathLike | IO[bytes], name: str) -> np.ndarray:
    """uint8 [H, W, 3] of an image file (a path or an open binary file such as an upload's bytes).

    A file that is no image, or larger than PIL's decompression-bomb limit, is a ValueError naming it."""
    try:
        with Image.open(source) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read the reference image {name} ({exc}): is it a PNG or JPEG?") from exc


def read_image(item, index: int = 0) -> np.ndarray:
    """uint8 [H, W, 3] from a path, a PIL image, a uint8 array or a [3, H, W] tensor in [-1, 1]."""
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"reference image {path} does not exist")
        return decode_image(path, str(path))
    if isinstance(item, Image.Image):
        return np.asarray(item.convert("RGB"))
    if isinstance(item, torch.Tensor):
        if item.ndim != 3 or item.shape[0] != 3:
            raise ValueError(f"reference tensor {index} has shape {list(item.shape)}; expected [3, H, W]")
        return (
            ((item.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        )
    array = np.asarray(item)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(
            f"reference {index} is a {array.dtype} array of shape {list(array.shape)};"
            " expected uint8 [H, W, 3]"
        )
    return array


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [M, R, R, 3] -> float [M, 3, R, R] in [-1, 1]."""
    return from_uint8(images)


def _resize(image: np.ndarray, resolution: int) -> np.ndarray:
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = Image.fromarray(image[top : top + side, left : left + side])
    return np.asarray(square.resize((resolution, resolution), Image.Resampling.LANCZOS))


def align_images(
    items: Sequence,
    resolution: int,
    align: str = "face",
    margin: float = DEFAULT_MARGIN,
    progress: bool = False,
) -> torch.Tensor:
    """[M, 3, R, R] in [-1, 1]: each reference's face crop (or centre square with align='none').

    progress: a bar of the face search on stderr."""
    if align not in ALIGNMENTS:
        raise ValueError(f"align={align!r} is not one of {ALIGNMENTS}")
    if not len(items):
        raise ValueError("no references given: pass at least one image")
    images = [read_image(item, i) for i, item in enumerate(items)]
    if align == "none":
        return to_tensor(np.stack([_resize(image, resolution) for image in images]))
    crops = []
    for i, (image, found) in enumerate(zip(images, _detect(images, progress), strict=True)):
        if found is None:
            raise NoFaceError(
                f"no face found in {_name(items[i], i)} (MTCNN, probability >= 0.9): use a photo where the"
                " face is visible and at least ~40 px tall, or align='none' (--align none) for images that"
                " are already face crops"
            )
        crops.append(crop_face(image, *face_square(found[0], margin), resolution))
    return to_tensor(np.stack(crops))


def _detect(images: Sequence[np.ndarray], progress: bool = False) -> list:
    """Each uint8 [H, W, 3] image's largest face (as faces.largest_faces), one at a time: they may differ
    in size, and the search (about 0.1 s a frame on a CPU) shows a bar with progress."""
    bar = tqdm(images, desc="find faces", unit="image", leave=False, disable=not progress)
    return [largest_faces(image[None])[0] for image in bar]


def align_video(
    frames: np.ndarray,
    resolution: int,
    align: str = "face",
    margin: float = DEFAULT_MARGIN,
    progress: bool = False,
):
    """uint8 [T, H, W, 3] -> [T, 3, R, R]: per-frame faces, the crop smoothed in time as prepare does.

    progress: a bar of the face search on stderr."""
    from stylevid.data.prepare.track import smooth_crops  # noqa: PLC0415

    if align not in ALIGNMENTS:
        raise ValueError(f"align={align!r} is not one of {ALIGNMENTS}")
    if align == "none":
        return to_tensor(np.stack([_resize(frame, resolution) for frame in frames]))
    found = _detect(frames, progress)
    if all(f is None for f in found):
        raise NoFaceError(f"no face found in any of the video's {len(frames)} frames")
    boxes = np.stack([np.full(4, np.nan) if f is None else f[0] for f in found])
    window = min(9, len(frames) - 1 + len(frames) % 2)
    crops = smooth_crops(boxes, margin, window)
    return to_tensor(np.stack([crop_face(f, *c, resolution) for f, c in zip(frames, crops, strict=True)]))
