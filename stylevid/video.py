"""Video files: save [N, T, 3, H, W] tensors in [-1, 1] as mp4, gif or a png sheet, and read videos back.

Writing picks the format from the suffix:

- `.mp4`: H.264 (libx264, yuv420p, constant quality `crf=quality`), BT.601 limited range and
  tagged as such. yuv420p needs an even width and height, so an odd size is padded with one
  replicated row or column on the bottom or right; reading the file returns the padded size.
- `.gif`: Pillow, looping forever, an adaptive 256-colour palette per frame. GIF delays are whole
  hundredths of a second, so the rate becomes 100/k fps (30 fps plays at 33.3); at most 50 fps,
  because browsers play shorter delays at 10 fps.
- `.png`: one image of all the frames, `nrow` per row (default T: one row per video), so frames
  can be compared side by side.

With N > 1 videos every mp4/gif frame is a grid of the N videos, `nrow` per row (default
ceil(sqrt(N))). Grid cells are separated by GRID_GAP white pixels.

`video` may also be an iterable of chunks along time ([t, 3, H, W] or [N, t, 3, H, W]), so a long
video is encoded while it is generated: mp4 holds one chunk at a time; gif and png hold every
frame (as uint8). A write goes to a hidden temporary file beside the target and is renamed onto it
at the end, so a failed or interrupted write never leaves a partial file under the final name; its
OS errors name the target.

Reading decodes mp4/avi/mov (PyAV), gif (Pillow) and folders of png/jpg frames, taken in natural
name order (frame2 before frame10).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import IO

import av
import numpy as np
import torch
from av.video.reformatter import ColorRange, Colorspace
from PIL import Image, ImageSequence

from stylevid.atomic import replacing, temp_path

READ_SUFFIXES = (".mp4", ".avi", ".mov", ".gif")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
GRID_GAP = 2
GRID_FILL = 1.0  # white, so cells stay apart where the backgrounds are dark
MAX_GIF_FPS = 50
# A gif comment that records the frame delay we wrote (see _read_gif for why).
GIF_DELAY_NOTE = "stylevid frame delay ms="
MAX_CRF = 51  # libx264's worst quality for 8-bit video


def from_uint8(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """float32 [..., 3, H, W] in [-1, 1] from uint8 pixels [..., H, W, 3] (numpy or torch): the inverse
    of to_uint8."""
    if isinstance(pixels, np.ndarray):
        pixels = torch.from_numpy(np.ascontiguousarray(pixels))
    if pixels.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels [..., H, W, 3], got {pixels.dtype}")
    return pixels.movedim(-1, -3).float() / 127.5 - 1


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """uint8 numpy [..., H, W, 3] from a float tensor [..., 3, H, W] in [-1, 1] (outside values clipped)."""
    if not video.is_floating_point():
        raise TypeError(
            f"expected a float tensor in [-1, 1], got {video.dtype};"
            " convert uint8 with stylevid.video.from_uint8"
        )
    if video.ndim < 3 or video.shape[-3] != 3:
        raise ValueError(f"expected RGB frames [..., 3, H, W], got shape {list(video.shape)}")
    bad = int((~torch.isfinite(video)).sum())
    if bad:
        raise ValueError(
            f"the video has {bad} NaN or infinite values; check what produced it (a diverged model?)"
        )
    scaled = (video.detach().clamp(-1, 1) + 1) * 127.5
    return scaled.round().to(torch.uint8).movedim(-3, -1).contiguous().cpu().numpy()


def make_grid(frames: torch.Tensor, nrow: int) -> torch.Tensor:
    """Tile [N, 3, H, W] into [3, H', W'], `nrow` per row; also [N, T, 3, H, W] into [T, 3, H', W']."""
    if nrow < 1:
        raise ValueError(f"nrow={nrow} must be at least 1")
    n, (h, w) = frames.shape[0], frames.shape[-2:]
    if n == 0:
        raise ValueError(f"nothing to tile: frames of shape {list(frames.shape)} hold no images")
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    size = (rows * (h + GRID_GAP) - GRID_GAP, cols * (w + GRID_GAP) - GRID_GAP)
    grid = frames.new_full((*frames.shape[1:-2], *size), GRID_FILL)
    for i, frame in enumerate(frames):
        y, x = (i // cols) * (h + GRID_GAP), (i % cols) * (w + GRID_GAP)
        grid[..., y : y + h, x : x + w] = frame
    return grid


def _batched(chunks: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Each chunk as [N, t, 3, H, W], checked to match the first chunk's N, H and W."""
    first, frames = None, 0
    for i, chunk in enumerate(chunks):
        if not isinstance(chunk, torch.Tensor):
            raise TypeError(f"video chunk {i} is a {type(chunk).__name__}; expected a torch.Tensor")
        if chunk.ndim not in (4, 5):
            raise ValueError(
                f"video chunk {i} has shape {list(chunk.shape)}; expected [T, 3, H, W] or [N, T, 3, H, W]"
                " (a single image is [1, 3, H, W])"
            )
        chunk = chunk if chunk.ndim == 5 else chunk[None]
        shape = [chunk.shape[0], *chunk.shape[2:]]
        first = first or shape
        if shape != first:
            raise ValueError(
                f"video chunk {i} has [N, 3, H, W] = {shape} but chunk 0 had {first}; chunks differ only in T"
            )
        frames += chunk.shape[1]
        yield chunk
    if frames == 0:
        raise ValueError("the video has no frames; pass at least one frame [1, 3, H, W]")


def _grid_frames(chunks: Iterable[torch.Tensor], nrow: int | None) -> Iterator[np.ndarray]:
    """uint8 [H', W', 3] frames: the N videos at each time tiled `nrow` per row (default ceil(sqrt(N)))."""
    for chunk in _batched(chunks):
        yield from to_uint8(make_grid(chunk, math.ceil(math.sqrt(chunk.shape[0])) if nrow is None else nrow))


def _write_mp4(
    chunks: Iterable[torch.Tensor], temp: Path, fps: float, nrow: int | None, quality: int
) -> None:
    with av.open(str(temp), mode="w", format="mp4") as container:
        # limit_denominator turns a float like 29.97002997 back into NTSC's exact 30000/1001.
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(quality)}
        # The RGB -> YUV conversion uses BT.601 in limited range; tagging it stops players from
        # guessing BT.709 and shifting the colours.
        stream.codec_context.colorspace = Colorspace.ITU601
        stream.codec_context.color_range = ColorRange.MPEG
        for index, frame in enumerate(_grid_frames(chunks, nrow)):
            frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
            if index == 0:
                stream.height, stream.width = frame.shape[:2]
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index
            container.mux(stream.encode(picture))
        container.mux(stream.encode())


def _write_gif(
    chunks: Iterable[torch.Tensor], temp: Path, fps: float, nrow: int | None, quality: int
) -> None:
    if fps > MAX_GIF_FPS:
        raise ValueError(
            f"fps={fps} is too fast for a gif: browsers play delays under 1/{MAX_GIF_FPS} s at 10 fps;"
            f" use fps <= {MAX_GIF_FPS} or write .mp4"
        )
    delay = 10 * round(100 / fps)
    images = (Image.fromarray(frame) for frame in _grid_frames(chunks, nrow))
    first = next(images)
    first.save(
        temp,
        format="GIF",
        save_all=True,
        append_images=images,
        loop=0,
        duration=delay,
        comment=f"{GIF_DELAY_NOTE}{delay}",
    )


def _write_png(
    chunks: Iterable[torch.Tensor], temp: Path, fps: float, nrow: int | None, quality: int
) -> None:
    video = torch.cat(list(_batched(chunks)), dim=1)
    grid = make_grid(video.flatten(0, 1), video.shape[1] if nrow is None else nrow)
    Image.fromarray(to_uint8(grid)).save(temp, format="PNG")


# The writers share one signature so save_video can look them up by suffix; each uses what it needs.
_WRITERS = {".mp4": _write_mp4, ".gif": _write_gif, ".png": _write_png}
WRITE_SUFFIXES = tuple(_WRITERS)


def save_video(
    video: torch.Tensor | Iterable[torch.Tensor],
    path: str | os.PathLike,
    fps: float = 25,
    nrow: int | None = None,
    quality: int = 18,
) -> Path:
    """Write [T, 3, H, W] or [N, T, 3, H, W] in [-1, 1] (or an iterable of chunks in time) to mp4/gif/png."""
    path = Path(path)
    writer = _WRITERS.get(path.suffix.lower())
    if writer is None:
        raise ValueError(f"cannot write {path}: suffix {path.suffix!r} is not one of {', '.join(_WRITERS)}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps={fps} must be a positive number of frames per second")
    if not 0 <= quality <= MAX_CRF:
        raise ValueError(
            f"quality={quality} is an x264 crf: 0 (lossless) to {MAX_CRF} (worst); 18 looks lossless"
        )
    temp = temp_path(path)
    with replacing(path, temp):
        path.parent.mkdir(parents=True, exist_ok=True)
        writer([video] if isinstance(video, torch.Tensor) else video, temp, fps, nrow, quality)
    return path


@contextlib.contextmanager
def _decoding(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise a decoder's failure as a ValueError that names the file."""
    try:
        yield
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(
            f"cannot decode {path}: {exc}; is the file complete and of the format its suffix says?"
        ) from exc


@contextlib.contextmanager
def open_video_stream(
    source: str | os.PathLike | IO[bytes],
) -> Iterator[tuple[av.container.InputContainer, av.VideoStream]]:
    """PyAV container and first video stream of a path or seekable binary file; ValueError if undecodable."""
    is_path = isinstance(source, str | os.PathLike)
    where = os.fspath(source) if is_path else getattr(source, "name", "the video file")
    with _decoding(where), av.open(where if is_path else source) as container:
        if not container.streams.video:
            raise ValueError(f"{where} has no video stream")
        yield container, container.streams.video[0]


def _read_av(path: Path) -> list[np.ndarray]:
    """uint8 [H, W, 3] frames of an mp4/avi/mov file."""
    with open_video_stream(path) as (container, stream):
        stream.thread_type = "AUTO"
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]


def _read_gif(path: Path) -> tuple[list[np.ndarray], int]:
    """uint8 [H, W, 3] frames of a gif at a constant rate, and the frame delay of that rate in ms."""
    frames, delays = [], []
    with _decoding(path), Image.open(path) as image:
        note = re.fullmatch(
            rf"{re.escape(GIF_DELAY_NOTE)}(\d+)", image.info.get("comment", b"").decode("latin-1")
        )
        for frame in ImageSequence.Iterator(image):
            frames.append(np.asarray(frame.convert("RGB")))
            # Browsers play a missing or under-20 ms delay as 100 ms.
            delay = frame.info.get("duration", 0)
            delays.append(delay if delay >= 20 else 100)
    # Pillow stores a run of identical frames once, with the summed delay: repeat it to restore the
    # run. Only our note gives the frame delay of a gif whose every frame is such a run (a still video).
    unit = int(note[1]) if note else min(delays)
    runs = zip(frames, delays, strict=True)
    return [frame for frame, delay in runs for _ in range(round(delay / unit))], unit


def natural_key(file: Path) -> list[int | str]:
    """Sort key that orders numbers by value: frame2 before frame10."""
    return [int(part) if part.isdecimal() else part for part in re.split(r"(\d+)", file.name)]


def _read_folder(path: Path) -> list[np.ndarray]:
    """uint8 [H, W, 3] frames from the png/jpg files of a folder, in natural name order."""
    files = sorted((f for f in path.iterdir() if f.suffix.lower() in FRAME_SUFFIXES), key=natural_key)
    frames = []
    for file in files:
        with _decoding(file), Image.open(file) as image:
            frames.append(np.asarray(image.convert("RGB")))
        if frames[-1].shape != frames[0].shape:
            raise ValueError(
                f"{file} is {frames[-1].shape[1]}x{frames[-1].shape[0]} but {files[0].name} is"
                f" {frames[0].shape[1]}x{frames[0].shape[0]}; the frames of a video share one size"
            )
    return frames


def _source(path: str | os.PathLike) -> Path:
    """`path` as a Path, checked to be a folder or a file with a readable suffix."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no video at {path}; check the path")
    if path.is_file() and path.suffix.lower() not in READ_SUFFIXES:
        raise ValueError(
            f"cannot read {path}: suffix {path.suffix!r} is not one of {', '.join(READ_SUFFIXES)},"
            f" and it is not a folder of {'/'.join(FRAME_SUFFIXES)} frames"
        )
    return path


def read_video(path: str | os.PathLike) -> torch.Tensor:
    """Decode an mp4/avi/mov/gif file or a folder of png/jpg frames to float32 [T, 3, H, W] in [-1, 1]."""
    path = _source(path)
    if path.is_dir():
        frames = _read_folder(path)
    elif path.suffix.lower() == ".gif":
        frames = _read_gif(path)[0]
    else:
        frames = _read_av(path)
    if not frames:
        raise ValueError(
            f"{path} has no frames; a video file needs a decodable frame, a folder a"
            f" {'/'.join(FRAME_SUFFIXES)} image"
        )
    return from_uint8(np.stack(frames))


def video_fps(path: str | os.PathLike) -> float:
    """Frames per second of an mp4/avi/mov/gif file."""
    path = _source(path)
    if path.is_dir():
        raise ValueError(
            f"{path} is a folder of frames, which stores no frame rate; supply the rate yourself"
        )
    if path.suffix.lower() == ".gif":
        return 1000 / _read_gif(path)[1]
    with open_video_stream(path) as (_, stream):
        rate = stream.average_rate or stream.guessed_rate
    if not rate:
        raise ValueError(f"{path} does not state its frame rate")
    return float(rate)
