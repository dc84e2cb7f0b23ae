"""Data speed on the CPU: rendering synthetic faces, writing, indexing and loading a folder, a .zip and mp4s.

    python benchmarks/data.py [--path DATASET] [--videos 24] [--frames 64] [--resolution 64] [--workers 0 2]

Without --path, random frames are written as a folder dataset, the same as a .zip, and as mp4 files in a
temporary folder, and all three are measured; with --path, that dataset alone. Loading runs a
DataLoader as training does (random clips of --clip frames, batches of --batch) and counts from the
first batch, so worker start-up is left out. Random frames are the worst case for png and H.264 sizes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from stylevid.data.dataset import VideoClipDataset
from stylevid.data.index import read_index
from stylevid.data.synthetic import render_speed
from stylevid.data.writer import DatasetWriter
from stylevid.video import from_uint8, save_video


def random_videos(videos: int, frames: int, resolution: int) -> list[np.ndarray]:
    """uint8 [T, R, R, 3] videos of uniform noise."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (frames, resolution, resolution, 3), dtype=np.uint8) for _ in range(videos)]


def write_speed(path: Path, videos: list[np.ndarray]) -> float:
    """Frames per second that DatasetWriter writes into `path` (a folder or a .zip)."""
    start = time.perf_counter()
    with DatasetWriter(path, 25.0, videos[0].shape[1]) as writer:
        for i, frames in enumerate(videos):
            writer.add_video(f"video_{i:05d}", frames)
    return sum(map(len, videos)) / (time.perf_counter() - start)


def write_mp4s(folder: Path, videos: list[np.ndarray]) -> float:
    """Frames per second that save_video encodes the videos as mp4 files into `folder`."""
    folder.mkdir()
    start = time.perf_counter()
    for i, frames in enumerate(videos):
        save_video(from_uint8(frames), folder / f"video_{i:05d}.mp4")
    return sum(map(len, videos)) / (time.perf_counter() - start)


def index_seconds(path: Path) -> float:
    """Seconds to index the dataset at `path` (listing, dataset.json, frame headers)."""
    start = time.perf_counter()
    read_index(path)
    return time.perf_counter() - start


def load_speed(path: Path, clip: int, batch: int, workers: int, clips: int) -> tuple[float, float]:
    """(clips/s, frames/s) of a training DataLoader over `path`, from its first batch on."""
    dataset = VideoClipDataset(path, frames_per_clip=clip)
    sampler = RandomSampler(dataset, replacement=True, num_samples=clips + batch)
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers)
    batches = iter(loader)
    next(batches)
    start = time.perf_counter()
    loaded = sum(len(b["video"]) for b in batches)
    seconds = time.perf_counter() - start
    return loaded / seconds, loaded * clip / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, help="a dataset to measure (default: temporary random ones)")
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--clip", type=int, default=3, help="frames per clip")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--clips", type=int, default=512, help="clips loaded per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--render", type=int, nargs="*", default=[64, 128], help="resolutions to render")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for resolution in args.render:
        print(f"synthetic faces at {resolution}²: {render_speed(resolution, 32):.1f} frames/s (one process)")
    with tempfile.TemporaryDirectory() as temp:
        if args.path is not None:
            datasets = {str(args.path): args.path}
        else:
            root = Path(temp)
            videos = random_videos(args.videos, args.frames, args.resolution)
            datasets = {"folder": root / "ds", "zip": root / "ds.zip", "mp4": root / "mp4"}
            print(f"{args.videos} random videos of {args.frames} frames at {args.resolution}²; writing:")
            for name in ("folder", "zip"):
                print(f"  {name:>6}: {write_speed(datasets[name], videos):8.0f} frames/s")
            print(f"  {'mp4':>6}: {write_mp4s(datasets['mp4'], videos):8.0f} frames/s")
        print(f"loading {args.clip}-frame clips, batches of {args.batch}:")
        print(f"  {'dataset':>8} {'index s':>8} {'workers':>8} {'clips/s':>9} {'frames/s':>9}")
        for name, path in datasets.items():
            indexing = index_seconds(path)
            for workers in args.workers:
                clips, frames = load_speed(path, args.clip, args.batch, workers, args.clips)
                print(f"  {name:>8} {indexing:>8.2f} {workers:>8} {clips:>9.0f} {frames:>9.0f}")


if __name__ == "__main__":
    main()
