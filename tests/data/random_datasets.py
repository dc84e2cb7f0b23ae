"""Small random datasets for the tests of the dataset's index, files, reader and writer."""

import zipfile

import numpy as np

from stylevid.data.files import DatasetFiles
from stylevid.data.index import read_index
from stylevid.data.reader import read_frames
from stylevid.data.writer import DatasetWriter

NAMES = {
    "identity": ["a", "b"],
    "pose": ["yaw", "pitch", "roll"],
    "lighting": ["azimuth", "warmth"],
    "background": ["angle"],
}
SIZE = 8


def clip(seed: int, frames: int, size: int = SIZE) -> np.ndarray:
    """Random uint8 frames [T, S, S, 3], different for every seed."""
    return np.random.default_rng(seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


def factors(seed: int, frames: int) -> dict[str, np.ndarray]:
    """Random float32 factors of NAMES' sizes: float32 so that the float64 round trip is checked exactly."""
    rng = np.random.default_rng(1000 + seed)
    return {
        "identity": rng.standard_normal(2).astype(np.float32),
        "pose": rng.standard_normal((frames, 3)).astype(np.float32),
        "lighting": rng.standard_normal((frames, 2)).astype(np.float32),
        "background": rng.standard_normal(1).astype(np.float32),
    }


def write(path, lengths, names=NAMES, fps=30.0) -> list[np.ndarray]:
    """A dataset of len(lengths) videos video_i (with factors when names is given); returns their frames."""
    videos = [clip(i, t) for i, t in enumerate(lengths)]
    with DatasetWriter(path, fps, SIZE, names) as writer:
        for i, frames in enumerate(videos):
            writer.add_video(f"video_{i}", frames, factors(i, len(frames)) if names else None)
    return videos


def check_dataset(path, videos, names=NAMES) -> None:
    """The dataset at `path` holds exactly `videos` (named video_i), with their factors, nothing skipped."""
    index = read_index(path)
    assert index.skipped == ()
    assert [v.name for v in index.videos] == [f"video_{i}" for i in range(len(videos))]
    files = DatasetFiles(path)
    for i, (entry, frames) in enumerate(zip(index.videos, videos, strict=True)):
        assert entry.frames == len(frames)
        np.testing.assert_array_equal(read_frames(files, entry, range(len(frames))), frames)
        if names:
            for key, value in factors(i, len(frames)).items():
                np.testing.assert_array_equal(entry.factors[key], value)
    files.close()


def temps(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def damage_zip_member(archive, name: str) -> None:
    """Overwrite 8 bytes in the middle of a stored zip member's data (its CRC no longer matches)."""
    with zipfile.ZipFile(archive) as opened:
        info = opened.getinfo(name)
    raw = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    raw[start : start + 8] = bytes(8)
    archive.write_bytes(bytes(raw))
