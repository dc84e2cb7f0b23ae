"""A studio view as files for the user to keep: frame PNG, clip MP4/GIF, codes (.safetensors), as bytes.

Files go through a private temporary folder under names made here, because the writers (save_video,
save_codes) write paths atomically; nothing the page sends names a path.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image

from stylevid.codes import Codes
from stylevid.codes_file import save_codes
from stylevid.video import make_grid, save_video, to_uint8

CLIP_TYPES = {"mp4": "video/mp4", "gif": "image/gif"}


def frame_png(frames: torch.Tensor, nrow: int, compress_level: int = 1) -> bytes:
    """PNG bytes of frames [N, 3, R, R] in [-1, 1], `nrow` per row as save_video's grids (fast by default)."""
    image = to_uint8(make_grid(frames, nrow) if len(frames) > 1 else frames[0])
    stream = io.BytesIO()
    Image.fromarray(image).save(stream, format="PNG", compress_level=compress_level)
    return stream.getvalue()


def clip_bytes(chunks: Iterable[torch.Tensor], kind: str, fps: float, nrow: int) -> bytes:
    """The bytes of an mp4 or gif of chunks [N, t, 3, R, R] in [-1, 1] (N > 1: a grid, `nrow` per row)."""
    if kind not in CLIP_TYPES:
        raise ValueError(f"a clip is {' or '.join(CLIP_TYPES)}, not {kind!r}")
    with tempfile.TemporaryDirectory(prefix="stylevid-studio-") as folder:
        return save_video(chunks, Path(folder) / f"clip.{kind}", fps=fps, nrow=nrow).read_bytes()


def codes_bytes(codes: Codes, metadata: dict) -> bytes:
    """The bytes of a codes file (save_codes: .safetensors, loadable with stylevid.load_codes)."""
    with tempfile.TemporaryDirectory(prefix="stylevid-studio-") as folder:
        return save_codes(Path(folder) / "codes.safetensors", codes, metadata).read_bytes()
