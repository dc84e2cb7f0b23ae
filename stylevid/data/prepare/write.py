"""`prepare`: the faces of a folder of videos cropped into a dataset, resuming what an earlier run wrote."""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from stylevid.data.faces import DEFAULT_MARGIN
from stylevid.data.files import DatasetFiles
from stylevid.data.index import DEFAULT_FPS, INDEX_FILE
from stylevid.data.prepare.jobs import Job, run_jobs
from stylevid.data.prepare.report import REPORT_SUFFIX, PrepareReport
from stylevid.data.prepare.sources import CLIP_SEP, SOURCE_SUFFIXES, find_videos, video_names
from stylevid.data.writer import DatasetWriter
from stylevid.video import video_fps

REPORT_SAVE_SECONDS = 60


def _dataset_fps(dest: Path, files: list[Path]) -> float:
    """The rate of the dataset at `dest` if it exists, else the most common rate of the files."""
    if dest.exists():
        try:
            index = DatasetFiles(dest)
            try:
                return float(json.loads(index.read(INDEX_FILE))["fps"])
            finally:
                index.close()
        except (OSError, KeyError, TypeError, ValueError):
            pass  # not a dataset yet: DatasetWriter says what is wrong with it
    rates = Counter()
    for file in files:
        try:
            rates[video_fps(file)] += 1
        except ValueError:
            pass  # an unreadable file is reported when its turn comes
    return rates.most_common(1)[0][0] if rates else DEFAULT_FPS


def _previous_entries(path: Path) -> dict[str, dict]:
    """The prepared and resumed entries of an earlier report at `path`, by source ({} if there is none)."""
    try:
        earlier = json.loads(path.read_bytes())
        return {entry["source"]: entry for entry in [*earlier["prepared"], *earlier["resumed"]]}
    except (OSError, KeyError, TypeError, ValueError):
        return {}


def _check_settings(resolution: int, fps: float | None, workers: int, min_frames: int, margin: float) -> None:
    checks = [
        (
            isinstance(resolution, int) and resolution >= 1,
            f"resolution={resolution!r} must be a positive int",
        ),
        (
            fps is None or (math.isfinite(fps) and fps > 0),
            f"fps={fps!r} must be positive (or None: the sources' rate)",
        ),
        (isinstance(workers, int) and workers >= 1, f"workers={workers!r} must be an int >= 1"),
        (isinstance(min_frames, int) and min_frames >= 1, f"min_frames={min_frames!r} must be an int >= 1"),
        (math.isfinite(margin) and margin > 0, f"margin={margin!r} must be positive (1.5: FFHQ framing)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def prepare(
    source: str | os.PathLike,
    dest: str | os.PathLike,
    resolution: int = 256,
    fps: float | None = None,
    workers: int = 2,
    min_frames: int = 16,
    margin: float = DEFAULT_MARGIN,
    progress: bool = True,
) -> PrepareReport:
    """Crop the faces of the videos under `source` into a dataset of resolution² frames at `dest` (dir/.zip).

    `fps` None keeps the rate of the dataset being resumed, else takes the most common rate of the
    sources; videos at other rates are resampled. Returns the report, also saved beside `dest`.
    With workers > 1 the workers are spawned processes, which import the caller's main script: call
    prepare from a script under `if __name__ == "__main__":`.
    """
    _check_settings(resolution, fps, workers, min_frames, margin)
    started = time.monotonic()
    source, dest = Path(source), Path(dest)
    files = find_videos(source, exclude=dest)
    if not files:
        raise FileNotFoundError(f"no {'/'.join(SOURCE_SUFFIXES)} video under --source {source}")
    root = source if source.is_dir() else source.parent
    sources = [file.relative_to(root).as_posix() for file in files]
    fps = _dataset_fps(dest, files) if fps is None else float(fps)
    report_path = dest.with_name(dest.name + REPORT_SUFFIX)
    previous = _previous_entries(report_path)
    report = PrepareReport(str(source), str(dest), str(report_path), resolution, fps, margin, min_frames)
    jobs = []
    with DatasetWriter(dest, fps, resolution) as writer:
        for file, relative, name in zip(files, sources, video_names(sources), strict=True):
            # name.clip1 is written after the other clips, so it marks a multi-clip video as complete.
            numbered = (f"{name}{CLIP_SEP}{k}" for k in itertools.count(1))
            names = (
                [name] if writer.has_video(name) else list(itertools.takewhile(writer.has_video, numbered))
            )
            if names:
                report.resumed.append(previous.get(relative, {"source": relative, "names": names}))
            else:
                jobs.append(Job(file, relative, name, fps, resolution, margin, min_frames))
        saved = time.monotonic()
        try:
            bar = tqdm(
                run_jobs(jobs, workers), total=len(jobs), desc="prepare", unit="video", disable=not progress
            )
            for job, entry, clips in bar:
                if not clips:
                    report.skipped.append(entry)
                    bar.set_postfix(skipped=len(report.skipped))
                    continue
                names = entry["names"]
                for k in reversed(range(len(clips))):
                    # A killed run may have written the later clips already (the same frames).
                    if not writer.has_video(names[k]):
                        writer.add_video(names[k], clips[k], source=job.source)
                report.prepared.append(entry)
                if time.monotonic() - saved > REPORT_SAVE_SECONDS:
                    report.seconds, saved = time.monotonic() - started, time.monotonic()
                    report.save()
        finally:
            report.seconds = round(time.monotonic() - started, 2)
            report.save()
    return report
