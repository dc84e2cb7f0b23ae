"""Writing the synthetic dataset: video i of `synthesize` depends only on (seed, i), so runs resume."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np

from stylevid.data.synthetic.factors import FACTOR_NAMES, sample_factors
from stylevid.data.synthetic.render import check_resolution, render_video


def video_name(index: int) -> str:
    """The dataset name of video `index`."""
    return f"video_{index:06d}"


def _make_video(job: tuple[int, int, int, int, float]) -> tuple[str, np.ndarray, dict[str, list]]:
    """Render video `index` of a dataset: its name, frames and factors depend only on (seed, index)."""
    seed, index, frames, resolution, fps = job
    factors = sample_factors(np.random.default_rng([seed, index]), frames, fps)
    record = {name: getattr(factors, name).tolist() for name in FACTOR_NAMES}
    return video_name(index), render_video(factors, resolution), record


def synthesize(
    out: str | Path,
    videos: int,
    frames: int,
    resolution: int,
    seed: int = 0,
    fps: float = 25.0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write `videos` videos uint8 [frames, R, R, 3] and their factors as a dataset (folder or .zip) at `out`.

    Videos already in a folder dataset are skipped, so an interrupted run resumes where it stopped.
    """
    from tqdm import tqdm  # noqa: PLC0415 - only writing datasets needs it

    from stylevid.data.writer import DatasetWriter  # noqa: PLC0415 - the renderer alone needs numpy only

    for name, value in (("videos", videos), ("frames", frames), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    resolution = check_resolution(resolution)
    if not fps > 0:
        raise ValueError(f"fps={fps!r} must be a positive number of frames per second")
    out = Path(out)
    with DatasetWriter(out, float(fps), resolution, factor_names=FACTOR_NAMES) as writer:
        todo = [i for i in range(videos) if not writer.has_video(video_name(i))]
        jobs = [(seed, i, frames, resolution, float(fps)) for i in todo]
        with tqdm(
            total=videos, initial=videos - len(todo), desc="synth", unit="video", disable=not progress
        ) as bar:
            if workers == 1 or len(jobs) < 2:
                results = map(_make_video, jobs)
                pool = None
            else:
                pool = multiprocessing.Pool(min(workers, len(jobs)))
                # Small chunks keep the bar moving and the workers evenly loaded.
                results = pool.imap(_make_video, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers))))
            try:
                for name, video, factors in results:
                    writer.add_video(name, video, factors=factors)
                    bar.update()
            finally:
                if pool is not None:
                    pool.terminate()
    return out
