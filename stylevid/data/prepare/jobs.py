"""One source video prepared (tracked, cropped, its report entry made), and many on worker processes."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylevid.data.faces import crop_face
from stylevid.data.prepare.decode import decode_frames
from stylevid.data.prepare.report import CORRUPT, ERROR, UnusableVideo
from stylevid.data.prepare.sources import clip_names
from stylevid.data.prepare.track import FaceTrack, track_faces


@dataclass(frozen=True)
class Job:
    """One source video to prepare, with the settings of the run."""

    path: Path
    source: str  # relative to the source folder, as the report and the dataset record it
    name: str
    fps: float
    resolution: int
    margin: float
    min_frames: int


def _padded(track: FaceTrack) -> int:
    """How many frames of the clips have a crop reaching outside the frame."""
    cx, cy, side = track.crops[~np.isnan(track.crops[:, 0])].T
    height, width = track.size
    return int(((np.minimum(cx, cy) < side / 2) | (cx + side / 2 > width) | (cy + side / 2 > height)).sum())


def _enlarged(track: FaceTrack, resolution: int) -> int:
    """How many frames of the clips have a crop smaller than resolution² (enlarged when resized)."""
    return int((track.crops[~np.isnan(track.crops[:, 0]), 2] < resolution).sum())


def _crop_clips(path: Path, track: FaceTrack, resolution: int) -> list[np.ndarray]:
    """uint8 [n, R, R, 3] frames of each clip of `track`, decoding the video a second time."""
    clips = [np.empty((b - a, resolution, resolution, 3), np.uint8) for a, b in track.clips]
    owner = np.full(len(track.boxes), -1)
    for k, (a, b) in enumerate(track.clips):
        owner[a:b] = k
    count = 0
    for t, frame in enumerate(decode_frames(path, track.fps)):
        count += 1
        if t < len(owner) and owner[t] >= 0:
            clips[owner[t]][t - track.clips[owner[t]][0]] = crop_face(frame, *track.crops[t], resolution)
    if count != len(owner):
        raise UnusableVideo(CORRUPT, f"decoding gave {count} frames, but {len(owner)} the first time")
    return clips


def _skip(job: Job, reason: str, detail: str) -> tuple[Job, dict, list[np.ndarray]]:
    """The run_job result of a job whose video is skipped."""
    return job, {"source": job.source, "reason": reason, "detail": detail}, []


def run_job(job: Job) -> tuple[Job, dict, list[np.ndarray]]:
    """Prepare one video: (job, its report entry, its clips' uint8 [n, R, R, 3] frames); failures skip it."""
    started = time.monotonic()
    try:
        track = track_faces(job.path, job.fps, job.margin, job.min_frames)
        clips = _crop_clips(job.path, track, job.resolution)
    except UnusableVideo as exc:
        return _skip(job, exc.reason, exc.detail)
    except Exception as exc:  # one bad video must not stop a run over thousands
        return _skip(job, ERROR, f"{type(exc).__name__}: {exc}")
    found = ~np.isnan(track.boxes[:, 0])
    entry = {
        "source": job.source,
        "names": clip_names(job.name, len(clips)),
        "frames": sum(len(clip) for clip in clips),
        "source_frames": len(track.boxes),
        "source_size": list(track.size),
        "clips": [list(clip) for clip in track.clips],
        "detection_rate": round(float(found.mean()), 4),
        "mean_crop_side": round(float(np.nanmean(track.crops[:, 2])), 1),
        "padded_frames": _padded(track),
        "enlarged_frames": _enlarged(track, job.resolution),
        "seconds": round(time.monotonic() - started, 2),
    }
    return job, entry, clips


def run_jobs(jobs: list[Job], workers: int) -> Iterator[tuple[Job, dict, list[np.ndarray]]]:
    """run_job of each job as it finishes, on `workers` processes (in this one for one worker or job)."""
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            yield run_job(job)
        return
    queue = iter(jobs)
    # spawn, not fork: a forked copy of a process that has used torch's thread pool can deadlock.
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"))
    pending: dict[Future, Job] = {}
    try:
        # Two jobs per worker in flight: finished crops wait in memory until they are written.
        for job in itertools.islice(queue, 2 * workers):
            pending[pool.submit(run_job, job)] = job
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool:
                    detail = "a worker process died (out of memory?); run prepare again to resume"
                    yield _skip(job, ERROR, detail)
                    for other in [*pending.values(), *queue]:
                        yield _skip(other, ERROR, f"not run: {detail}")
                    return
                following = next(queue, None)
                if following is not None:
                    pending[pool.submit(run_job, following)] = following
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
