"""Video files: mp4/gif/png round trips, grid layout, streaming, errors and atomic writes."""

import errno
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from stylevid.atomic import staged_target
from stylevid.video import (
    GRID_GAP,
    from_uint8,
    make_grid,
    open_video_stream,
    read_video,
    save_video,
    to_uint8,
    video_fps,
)


def smooth_video(frames: int = 16, height: int = 48, width: int = 64) -> torch.Tensor:
    """Moving sinusoidal gradients, [T, 3, H, W] in [-0.8, 0.8]: easy for a codec, never still."""
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    y = torch.linspace(-1, 1, height)[None, :, None]
    x = torch.linspace(-1, 1, width)[None, None, :]
    channels = [
        torch.sin(3 * x + t / 4) * torch.cos(2 * y),
        torch.cos(2 * x - y + t / 5),
        torch.sin(3 * x * y - t / 6),
    ]
    return 0.8 * torch.stack(channels, dim=1)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two videos in [-1, 1] (peak-to-peak 2)."""
    return 10 * math.log10(4 / ((a - b) ** 2).mean().item())


def constant_colours(videos: int, frames: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, T, 3, S, S] with one distinct colour per (video, frame), and those colours [N, T, 3]."""
    index = torch.arange(videos * frames, dtype=torch.float32).reshape(videos, frames)
    colours = torch.stack([index / (videos * frames) * 2 - 1, index % 3 - 1, torch.full_like(index, 0.5)], -1)
    return colours[..., None, None].expand(-1, -1, -1, size, size).contiguous(), colours


def leftovers(folder):
    """Names in `folder`, to check that no temporary file remains."""
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fps", [25, 29.97])
def test_mp4_round_trip(tmp_path, fps):
    video = smooth_video()
    path = save_video(video, tmp_path / "clip.mp4", fps=fps)
    decoded = read_video(path)
    assert decoded.dtype == torch.float32
    assert decoded.shape == video.shape
    assert psnr(decoded, video) > 30
    assert video_fps(path) == pytest.approx(fps, abs=1e-9)
    assert leftovers(tmp_path) == ["clip.mp4"]


def test_mp4_odd_size_is_padded_to_even_by_edge_replication(tmp_path):
    video = smooth_video(frames=8, height=31, width=33)
    decoded = read_video(save_video(video, tmp_path / "odd.mp4"))
    assert decoded.shape == (8, 3, 32, 34)
    assert psnr(decoded[..., :31, :33], video) > 30
    # The added row and column repeat the last ones (up to compression error), which differ from
    # their neighbours about five times as much: neither zeros nor a reflection would pass.
    assert (decoded[..., 31, :] - decoded[..., 30, :]).abs().mean() < 0.02
    assert (decoded[..., :, 33] - decoded[..., :, 32]).abs().mean() < 0.02


def test_gif_round_trip(tmp_path):
    video = smooth_video()
    path = save_video(video, tmp_path / "clip.gif", fps=25)
    decoded = read_video(path)
    assert decoded.shape == video.shape
    assert (decoded - video).abs().mean() < 0.06  # 256-colour palette per frame
    assert video_fps(path) == 25


def test_gif_keeps_held_frames_and_rounds_rate_to_centiseconds(tmp_path):
    # Pillow merges identical consecutive frames into one with a longer delay; reading undoes it.
    still = torch.zeros(5, 3, 8, 8)
    assert read_video(save_video(still, tmp_path / "still.gif", fps=10)).shape[0] == 5
    held = torch.cat([torch.full((3, 3, 8, 8), -0.5), torch.full((4, 3, 8, 8), 0.5)])
    path = save_video(held, tmp_path / "held.gif", fps=30)
    decoded = read_video(path)
    assert decoded[:, 0, 0, 0].tolist() == pytest.approx([-0.5] * 3 + [0.5] * 4, abs=0.01)
    assert video_fps(path) == pytest.approx(100 / 3)  # 30 fps is not a whole number of 10 ms


def cell(image: np.ndarray, row: int, col: int, size: int = 8) -> np.ndarray:
    """The pixels of grid cell (row, col) of an image [H, W, 3]."""
    y, x = row * (size + GRID_GAP), col * (size + GRID_GAP)
    return image[y : y + size, x : x + size]


def test_png_sheet_has_a_row_per_video_and_white_gaps(tmp_path):
    video, colours = constant_colours(videos=2, frames=3)
    image = np.asarray(Image.open(save_video(video, tmp_path / "sheet.png")))
    assert image.shape == (2 * 8 + GRID_GAP, 3 * 8 + 2 * GRID_GAP, 3)
    expected = to_uint8(colours[..., None, None])[..., 0, 0, :]  # [N, T, 3]
    for n in range(2):
        for t in range(3):
            assert (cell(image, n, t) == expected[n, t]).all(), (n, t)
    assert (image[8 : 8 + GRID_GAP] == 255).all()
    for col in (8, 18):
        assert (image[:, col : col + GRID_GAP] == 255).all()


def test_png_sheet_of_one_video_is_one_row_unless_nrow(tmp_path):
    video, colours = constant_colours(videos=1, frames=5)
    one_row = np.asarray(Image.open(save_video(video[0], tmp_path / "row.png")))
    assert one_row.shape == (8, 5 * 8 + 4 * GRID_GAP, 3)
    wrapped = np.asarray(Image.open(save_video(video[0], tmp_path / "wrapped.png", nrow=2)))
    assert wrapped.shape == (3 * 8 + 2 * GRID_GAP, 2 * 8 + GRID_GAP, 3)
    assert (cell(wrapped, 2, 0) == to_uint8(colours[0, 4, :, None, None])[0, 0]).all()
    assert (cell(wrapped, 2, 1) == 255).all()  # the sixth cell has no frame: gap colour


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_streamed_chunks_decode_exactly_like_the_whole_video(tmp_path, suffix):
    videos = torch.stack([smooth_video(), smooth_video().flip(-1)])  # [2, 16, 3, 48, 64]
    whole = read_video(save_video(videos, tmp_path / f"whole{suffix}"))
    chunks = (videos[:, start : start + 5] for start in range(0, 16, 5))
    streamed = read_video(save_video(chunks, tmp_path / f"streamed{suffix}"))
    assert streamed.shape[0] == 16
    assert torch.equal(streamed, whole)


@pytest.mark.parametrize(("nrow", "size"), [(None, (34, 40)), (2, (52, 26)), (5, (16, 68))])
def test_grid_video_tiles_the_videos(tmp_path, nrow, size):
    video, colours = constant_colours(videos=5, frames=4, size=16)
    video = video[:, :, :, :, :12]  # cells 16 high, 12 wide
    decoded = read_video(save_video(video, tmp_path / "grid.mp4", nrow=nrow))
    assert decoded.shape == (4, 3, *size)
    cols = nrow or 3
    for n in range(5):
        y, x = (n // cols) * (16 + GRID_GAP) + 8, (n % cols) * (12 + GRID_GAP) + 6
        # Same-time cells of different videos differ by at least 0.4 in red.
        assert torch.allclose(decoded[:, :, y, x], colours[n], atol=0.1), n


def test_make_grid_and_to_uint8():
    frames = torch.stack(
        [torch.full((3, 2, 2), -1.0), torch.full((3, 2, 2), 0.0), torch.full((3, 2, 2), 2.0)]
    )
    grid = make_grid(frames, nrow=2)
    assert grid.shape == (3, 2 * 2 + GRID_GAP, 2 * 2 + GRID_GAP)
    image = to_uint8(grid)
    assert image.shape == (6, 6, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [0, 0, 0]
    assert image[0, 4].tolist() == [128, 128, 128]
    assert image[4, 0].tolist() == [255, 255, 255]  # 2.0 is clipped to 1
    assert image[2, 0].tolist() == [255, 255, 255]  # gap


def test_from_uint8_maps_every_value_linearly_onto_minus_one_to_one_and_to_uint8_undoes_it():
    pixels = np.arange(256, dtype=np.uint8).reshape(2, 4, 32)[..., None].repeat(3, -1)  # [2, 4, 32, 3]
    video = from_uint8(pixels)
    assert video.dtype == torch.float32 and video.shape == (2, 3, 4, 32)
    assert video[0, 0, 0, 0] == -1 and video[1, 2, 3, 31] == 1
    assert torch.allclose(video[:, 1].flatten(), torch.linspace(-1, 1, 256), atol=1e-6)
    assert torch.equal(from_uint8(torch.from_numpy(pixels)), video)  # numpy or torch alike
    assert np.array_equal(to_uint8(video), pixels)  # exact for all 256 values
    with pytest.raises(TypeError, match="uint8"):
        from_uint8(pixels.astype(np.float32))


def test_reads_a_folder_of_frames_in_natural_order(tmp_path):
    for index in (10, 2, 1):
        Image.new("RGB", (4, 6), (index * 20, 0, 0)).save(tmp_path / f"frame{index}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    video = read_video(tmp_path)
    assert video.shape == (3, 3, 6, 4)
    assert ((video[:, 0, 0, 0] + 1) * 127.5).round().tolist() == [20, 40, 200]


def crash_once_written(folder, temps_seen):
    """Chunks of frames until the writer's temporary file shows up in `folder`, then a crash."""
    for _ in range(20):
        yield smooth_video(frames=8)
        temps = [p.name for p in folder.iterdir() if staged_target(p.name)]
        if temps:
            temps_seen.extend(temps)
            break
    raise RuntimeError("generator crashed")


@pytest.mark.parametrize("suffix", [".mp4", ".gif", ".png"])
def test_a_crash_mid_write_leaves_no_file(tmp_path, suffix):
    temps_seen = []
    with pytest.raises(RuntimeError, match="generator crashed"):
        save_video(crash_once_written(tmp_path, temps_seen), tmp_path / f"clip{suffix}")
    # mp4 and gif are encoded while the frames come; png is written once they all have.
    staged = [(staged_target(name), name.endswith(suffix)) for name in temps_seen]
    assert staged == ([] if suffix == ".png" else [(f"clip{suffix}", True)])
    assert leftovers(tmp_path) == []


def test_a_crash_mid_write_keeps_the_old_file(tmp_path):
    old = save_video(smooth_video(frames=2), tmp_path / "old.mp4")
    before = old.read_bytes()
    temps_seen = []
    with pytest.raises(RuntimeError, match="generator crashed"):
        save_video(crash_once_written(tmp_path, temps_seen), old)
    assert temps_seen
    assert old.read_bytes() == before
    assert leftovers(tmp_path) == ["old.mp4"]


def test_atomic_write_when_nothing_was_encoded(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        save_video(iter([]), tmp_path / "empty.mp4")
    with pytest.raises(ValueError, match="NaN"):
        save_video(torch.full((2, 3, 8, 8), math.nan), tmp_path / "nan.mp4")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".mp4", ".gif", ".png"])
def test_os_errors_name_the_video_and_keep_their_class(tmp_path, monkeypatch, suffix):
    def fail(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    path = tmp_path / f"clip{suffix}"
    with pytest.raises(OSError) as info:
        save_video(smooth_video(frames=2), path)
    assert info.value.errno == errno.ENOSPC and str(path) in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions")
@pytest.mark.parametrize("suffix", [".mp4", ".gif", ".png"])
def test_a_read_only_folder_is_named(tmp_path, suffix):
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    path = folder / f"clip{suffix}"
    with pytest.raises(PermissionError) as info:
        save_video(smooth_video(frames=2), path)
    assert info.value.errno == errno.EACCES and str(path) in str(info.value)


@pytest.mark.parametrize(
    ("video", "name", "kwargs", "error", "match"),
    [
        (torch.zeros(3, 8, 8), "a.mp4", {}, ValueError, r"shape \[3, 8, 8\].*\[T, 3, H, W\]"),
        (
            torch.zeros(1, 1, 2, 3, 8, 8),
            "a.mp4",
            {},
            ValueError,
            r"expected \[T, 3, H, W\] or \[N, T, 3, H, W\]",
        ),
        (torch.zeros(2, 4, 8, 8), "a.mp4", {}, ValueError, r"expected RGB frames.*\[2, 4, 8, 8\]"),
        (
            torch.tensor([0, math.inf]).repeat(48).reshape(2, 3, 4, 4),
            "a.gif",
            {},
            ValueError,
            "has 48 NaN or inf",
        ),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "a.png", {}, TypeError, "torch.uint8"),
        (torch.zeros(2, 3, 8, 8), "a.avi", {}, ValueError, r"'\.avi'.*\.mp4, \.gif, \.png"),
        (torch.zeros(2, 3, 8, 8), "a.mp4", {"fps": 0}, ValueError, "fps=0"),
        (torch.zeros(2, 3, 8, 8), "a.mp4", {"quality": 60}, ValueError, "quality=60"),
        (torch.zeros(2, 3, 8, 8), "a.gif", {"fps": 60}, ValueError, "fps=60.*mp4"),
        (torch.zeros(2, 3, 8, 8), "a.mp4", {"nrow": 0}, ValueError, "nrow=0"),
        (
            [torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 6)],
            "a.mp4",
            {},
            ValueError,
            r"chunk 1 .*\[1, 3, 8, 6\]",
        ),
        ([torch.zeros(2, 3, 8, 8), np.zeros((2, 3, 8, 8))], "a.mp4", {}, TypeError, "chunk 1 is a ndarray"),
    ],
)
def test_save_errors_name_the_problem(tmp_path, video, name, kwargs, error, match):
    with pytest.raises(error, match=match):
        save_video(video, tmp_path / name, **kwargs)
    assert leftovers(tmp_path) == []


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")

    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="cannot decode .*noise.mp4"):
        read_video(noise)

    truncated = tmp_path / "truncated.mp4"
    whole = save_video(smooth_video(), tmp_path / "whole.mp4").read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    for read in (read_video, video_fps):
        with pytest.raises(ValueError, match="cannot decode .*truncated.mp4"):
            read(truncated)

    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(ValueError, match=r"notes.txt: suffix '\.txt' is not one of \.mp4"):
        read_video(tmp_path / "notes.txt")

    (tmp_path / "frames").mkdir()
    with pytest.raises(ValueError, match="no frames"):
        read_video(tmp_path / "frames")
    with pytest.raises(ValueError, match="no frame rate"):
        video_fps(tmp_path / "frames")
    Image.new("RGB", (4, 4)).save(tmp_path / "frames" / "0.png")
    Image.new("RGB", (4, 6)).save(tmp_path / "frames" / "1.png")
    with pytest.raises(ValueError, match=r"1.png is 4x6 but 0.png is 4x4"):
        read_video(tmp_path / "frames")


def test_a_video_stream_opens_from_a_path_or_a_file_object(tmp_path):
    path = save_video(smooth_video(frames=5), tmp_path / "clip.mp4", fps=25)
    with open(path, "rb") as file, open_video_stream(file) as (container, stream):
        from_file = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    with open_video_stream(path) as (container, stream):
        assert (stream.width, stream.height, float(stream.average_rate)) == (64, 48, 25.0)
        from_path = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    assert len(from_file) == 5
    np.testing.assert_array_equal(np.stack(from_file), np.stack(from_path))
    # A file object is named by its `name` in errors, as a path is.
    (tmp_path / "noise.mp4").write_bytes(bytes(range(256)) * 16)
    with (
        open(tmp_path / "noise.mp4", "rb") as file,
        pytest.raises(ValueError, match="cannot decode .*noise.mp4"),
    ):
        with open_video_stream(file):
            pass
