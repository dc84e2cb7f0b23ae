"""Prepare real face videos as a stylevid dataset: find the face, follow it smoothly, crop, resize, write.

Each .mp4/.avi/.mov/.mkv file under the source folder (hidden files and folders left out) goes through:

1. Decoding with PyAV at the dataset's frame rate (frames repeated or dropped by their timestamps).
2. Face detection with MTCNN on a copy whose longest side is at most DETECT_SIDE pixels. Of several faces
   the one overlapping the face kept in earlier frames is kept (IoU >= TRACK_IOU), else the largest.
3. Clips: frames with a face, across gaps of up to MAX_GAP_SECONDS (the box there is interpolated from its
   neighbours). A longer gap (the person left, a scene cut) ends a clip; frames before the first and after
   the last detection are left out; clips shorter than `min_frames` are dropped. One clip keeps the
   video's name, several are `name.clip1`, `name.clip2`, ... (sanitised names never hold a '.').
4. A square crop per frame: side = `margin` x the face box's longer side, centre LIFT x the box height
   above the box centre. margin 1.5 frames the face as FFHQ does (measured on MTCNN's box of the
   astronaut photo: FFHQ's crop is 1.52 x the box, centred 0.10 x its height higher): hair to chin.
   Centre and side are smoothed over time with a quadratic Savitzky-Golay filter of SMOOTH_SECONDS:
   detector jitter goes, while steady motion is followed without the lag of a moving average.
5. Where a crop leaves the frame the frame is extended by reflection, as FFHQ does: a constant border
   would teach a GAN a hard edge that real faces never have. The report counts such `padded_frames`.
6. Lanczos resizing (antialiased) to resolution², written with DatasetWriter (folder or .zip).

A video that cannot be used is skipped with a reason (SKIP_REASONS), never stopping the run. The report
goes beside the dataset, `<dest>.prepare-report.json` (inside it, a dataset folder would list it as a
stray file). Running again resumes: videos already in the dataset are not redone and skipped ones are
tried again. A folder resumes even after a kill; a .zip is only complete once a run ends, so a killed
run into a .zip starts over.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import av
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from stylevid.atomic import write_atomically
from stylevid.data.format import DEFAULT_FPS, INDEX_FILE, DatasetFiles, DatasetWriter
from stylevid.video import video_fps

SOURCE_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
DEFAULT_MARGIN = 1.5
LIFT = 0.1
# MTCNN takes ~80 ms per 400x300 frame on one core; faces in talking-head videos stay far above its 20 px
# smallest face at this size.
DETECT_SIDE = 400
MIN_PROB = 0.9  # MTCNN's own last threshold (0.7) lets through face-like texture
TRACK_IOU = 0.3
MAX_GAP_SECONDS = 0.5
SMOOTH_SECONDS = 0.6
SMOOTH_ORDER = 2
CLIP_SEP = ".clip"
MAX_NAME_BYTES = 150  # DatasetWriter takes 200; room for the collision hash and clip suffix
REPORT_SUFFIX = ".prepare-report.json"
REPORT_SAVE_SECONDS = 60
CORRUPT, TOO_SHORT, NO_FACE, BRIEF_FACE, ERROR = "corrupt", "too short", "no face", "face too brief", "error"
SKIP_REASONS = {
    CORRUPT: "the file cannot be decoded (damaged, truncated or not a video)",
    TOO_SHORT: "fewer than min_frames frames at the dataset's frame rate",
    NO_FACE: "MTCNN found no face in any frame",
    BRIEF_FACE: "faces were found, but no clip with a face reaches min_frames frames",
    ERROR: "an unexpected failure (the detail says which); please report it",
}


class UnusableVideo(ValueError):
    """A source video that cannot become a dataset video; `reason` is a key of SKIP_REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class FaceTrack:
    """The face in each frame of one video and the smoothed square crops of its clips, in source pixels."""

    boxes: np.ndarray  # [T, 4] face box x0, y0, x1, y1; NaN where no face was found
    crops: np.ndarray  # [T, 3] crop centre x, centre y, side; NaN outside the clips
    clips: list[tuple[int, int]]  # [start, stop) frame ranges, each one dataset video
    size: tuple[int, int]  # (height, width) of the source frames
    fps: float  # the rate the frames were taken at


@dataclass(frozen=True)
class _Job:
    path: Path
    source: str  # relative to the source folder, as the report and the dataset record it
    name: str
    fps: float
    resolution: int
    margin: float
    min_frames: int


@dataclass
class PrepareReport:
    """What `prepare` did: its settings and each video prepared, resumed or skipped (with the reason)."""

    source: str
    dest: str
    path: str  # where this report is saved as JSON
    resolution: int
    fps: float
    margin: float
    min_frames: int
    seconds: float = 0.0
    prepared: list[dict] = field(default_factory=list)
    resumed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def save(self) -> None:
        """Write the report as JSON to `path`, entries sorted by source (atomically)."""
        for entries in (self.prepared, self.resumed, self.skipped):
            entries.sort(key=lambda entry: entry["source"])
        data = {**asdict(self), "skip_reasons": SKIP_REASONS}
        write_atomically(Path(self.path), json.dumps(data, indent=1).encode())

    def summary(self, listed: int = 10) -> str:
        """A few lines for people: counts, time per video, the first `listed` skipped videos, the report."""
        clips = sum(len(entry["names"]) for entry in self.prepared)
        frames = sum(entry["frames"] for entry in self.prepared)
        done = len(self.prepared) + len(self.skipped)
        lines = [
            f"prepared {len(self.prepared)} videos ({clips} clips, {frames} frames) into {self.dest}"
            f" ({self.resolution}x{self.resolution}, {self.fps:g} fps) in {self.seconds:.1f} s"
            + (f" ({self.seconds / done:.1f} s per video)" if done else "")
        ]
        if self.resumed:
            lines.append(f"{len(self.resumed)} videos were already in the dataset and were kept (resumed)")
        if self.skipped:
            reasons = Counter(entry["reason"] for entry in self.skipped)
            lines.append(f"skipped {len(self.skipped)}: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
            lines += [f"  {e['source']}: {e['reason']} ({e['detail']})" for e in self.skipped[:listed]]
            if len(self.skipped) > listed:
                lines.append(f"  ... and {len(self.skipped) - listed} more")
        lines.append(f"report: {self.path}")
        if Path(self.dest).suffix.lower() == ".zip":
            lines.append(
                "a .zip is complete only when a run ends: a killed run starts over (a folder resumes)"
            )
        return "\n".join(lines)


def find_videos(source: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[Path]:
    """Video files under `source` (or `source` itself), sorted; hidden ones and any in `exclude` left out."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"no folder or video at --source {source}; check the path")
    excluded = Path(exclude).resolve() if exclude is not None else None
    found = []
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        # Hidden files include macOS "._x.mp4" resource forks and our own writers' temporary files.
        if any(part.startswith(".") for part in relative.parts) or path.suffix.lower() not in SOURCE_SUFFIXES:
            continue
        if excluded is not None and excluded in path.resolve().parents:
            continue
        if path.is_file():
            found.append(path)
    return sorted(found, key=lambda path: path.relative_to(source).as_posix())


def video_names(sources: Iterable[str]) -> list[str]:
    """Unique dataset names for '/'-separated relative paths: 'a/b c.mp4' -> 'a__b_c' (no '.' in names)."""
    names, used = [], set()
    for source in sources:
        parts = PurePosixPath(source).with_suffix("").parts
        name = "__".join(re.sub(r"[^A-Za-z0-9_-]", "_", part) for part in parts)
        digest = hashlib.sha1(source.encode()).hexdigest()[:8]
        if len(name) > MAX_NAME_BYTES:
            name = f"{name[:MAX_NAME_BYTES]}-{digest}"
        if name in used:
            name = f"{name}-{digest}"
        used.add(name)
        names.append(name)
    return names


def clip_names(name: str, clips: int) -> list[str]:
    """Dataset names of a video's clips: the name itself for one, name.clip1, name.clip2, ... for several."""
    return [name] if clips == 1 else [f"{name}{CLIP_SEP}{k}" for k in range(1, clips + 1)]


@functools.cache
def _detector():
    """MTCNN on the CPU, built once per process (its weights ship inside facenet-pytorch)."""
    # Imported here: facenet-pytorch imports torchvision, seconds that every `stylevid` command would pay.
    from facenet_pytorch import MTCNN  # noqa: PLC0415

    return MTCNN(device="cpu", select_largest=True)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after)."""
    # MTCNN's small convolutions gain little from threads, and lose up to 15x when the cores are shared
    # (with the other workers, or anything else): every thread then waits for the slowest.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _source_rate(path: Path) -> float:
    try:
        return video_fps(path)
    except ValueError as exc:
        raise UnusableVideo(CORRUPT, str(exc)) from exc


def _decode(path: Path, fps: float | None) -> Iterator[np.ndarray]:
    """uint8 [H, W, 3] frames of a video file; with `fps` (if not its own), resampled by their timestamps."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnusableVideo(CORRUPT, "the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate or stream.guessed_rate or 0)
            if fps is None or math.isclose(fps, rate, rel_tol=1e-6):
                for frame in container.decode(stream):
                    yield frame.to_ndarray(format="rgb24")
            else:
                yield from _resample(container.decode(stream), fps, rate or fps)
    except (av.FFmpegError, OSError) as exc:
        raise UnusableVideo(CORRUPT, f"cannot decode: {exc}") from exc


def _resample(frames: Iterable[av.VideoFrame], fps: float, rate: float) -> Iterator[np.ndarray]:
    """uint8 [H, W, 3] frames at `fps` from frames at ~`rate`: frame k is the one shown at time k / fps."""
    held, start, shown, slot = None, None, 0.0, 0
    for frame in frames:
        if frame.time is None:
            raise UnusableVideo(CORRUPT, "its frames have no timestamps, so they cannot be resampled")
        start = frame.time if start is None else start
        shown = frame.time - start
        # The slots before this frame's time show the frame before it (a slot at the same time shows this).
        while slot < shown * fps - 1e-6:
            yield held
            slot += 1
        held = frame.to_ndarray(format="rgb24")
    # The last frame stays on screen for one frame period.
    while held is not None and slot < (shown + 1 / rate) * fps - 1e-6:
        yield held
        slot += 1


def _iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Intersection over union of [N, 4] boxes with one [4] box (x0, y0, x1, y1)."""
    size = np.clip(np.minimum(boxes[:, 2:], box[2:]) - np.maximum(boxes[:, :2], box[:2]), 0, None)
    inter = size[:, 0] * size[:, 1]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (areas + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def _detect(detector, frame: np.ndarray, previous: np.ndarray | None) -> np.ndarray | None:
    """The face box [4] (x0, y0, x1, y1, frame pixels) to follow in a uint8 [H, W, 3] frame, or None."""
    height, width = frame.shape[:2]
    scale = min(1.0, DETECT_SIDE / max(height, width))
    small = (round(width * scale), round(height * scale))
    image = (
        frame if scale == 1 else np.asarray(Image.fromarray(frame).resize(small, Image.Resampling.BILINEAR))
    )
    boxes, probs = detector.detect(image)
    if boxes is None:
        return None
    boxes = np.asarray(list(boxes), dtype=np.float64) * np.tile([width / small[0], height / small[1]], 2)
    boxes = boxes[np.asarray(list(probs), dtype=np.float64) >= MIN_PROB]
    if not len(boxes):
        return None
    if previous is not None:
        overlap = _iou(boxes, previous)
        if overlap.max() >= TRACK_IOU:
            return boxes[overlap.argmax()]
    return boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]


def _clips(found: np.ndarray, max_gap: int, min_frames: int) -> list[tuple[int, int]]:
    """[start, stop) runs of frames with a face, across gaps of up to `max_gap` frames, of >= min_frames."""
    index = np.flatnonzero(found)
    ends = np.flatnonzero(np.diff(index) > max_gap + 1)
    starts, stops = np.r_[index[0], index[ends + 1]], np.r_[index[ends], index[-1]] + 1
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if b - a >= min_frames]


def _smooth_crops(boxes: np.ndarray, margin: float, window: int) -> np.ndarray:
    """[n, 3] crop centre x, y and side from [n, 4] face boxes (NaN rows interpolated), smoothed in time."""
    t = np.arange(len(boxes))
    ok = ~np.isnan(boxes[:, 0])
    x0, y0, x1, y1 = (np.interp(t, t[ok], boxes[ok, i]) for i in range(4))
    crops = np.stack(
        [(x0 + x1) / 2, (y0 + y1) / 2 - LIFT * (y1 - y0), margin * np.maximum(x1 - x0, y1 - y0)], 1
    )
    window = min(window, len(boxes) - 1 + len(boxes) % 2)  # odd, at most the clip's length
    if window <= SMOOTH_ORDER:
        return crops
    # Imported here: scipy.signal takes ~2 s to import, which every `stylevid` command would pay.
    from scipy.signal import savgol_filter  # noqa: PLC0415

    return savgol_filter(crops, window, SMOOTH_ORDER, axis=0, mode="interp")


def track_faces(
    path: str | os.PathLike,
    fps: float | None = None,
    margin: float = DEFAULT_MARGIN,
    min_frames: int = 16,
    detector=None,
) -> FaceTrack:
    """Each frame's face box and smoothed crop at `fps` (None: the file's own); UnusableVideo if none."""
    path = Path(path)
    fps = _source_rate(path) if fps is None else fps
    detector = detector or _detector()
    boxes, previous, size = [], None, (0, 0)
    with _one_thread():
        for frame in _decode(path, fps):
            size = frame.shape[:2]
            box = _detect(detector, frame, previous)
            previous = previous if box is None else box
            boxes.append(np.full(4, np.nan) if box is None else box)
    if len(boxes) < min_frames:
        raise UnusableVideo(TOO_SHORT, f"{len(boxes)} frames at {fps:g} fps; min_frames={min_frames}")
    boxes = np.stack(boxes)
    found = ~np.isnan(boxes[:, 0])
    if not found.any():
        raise UnusableVideo(NO_FACE, f"no face in {len(boxes)} frames")
    max_gap = round(MAX_GAP_SECONDS * fps)
    clips = _clips(found, max_gap, min_frames)
    if not clips:
        longest = max(b - a for a, b in _clips(found, max_gap, 1))
        raise UnusableVideo(
            BRIEF_FACE,
            f"the longest run with a face is {longest} frames (gaps up to {max_gap} bridged);"
            f" min_frames={min_frames}",
        )
    crops = np.full((len(boxes), 3), np.nan)
    window = 2 * round(SMOOTH_SECONDS * fps / 2) + 1
    for a, b in clips:
        crops[a:b] = _smooth_crops(boxes[a:b], margin, window)
    return FaceTrack(boxes, crops, clips, size, fps)


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


def _padded(track: FaceTrack) -> int:
    """How many frames of the clips have a crop reaching outside the frame."""
    cx, cy, side = track.crops[~np.isnan(track.crops[:, 0])].T
    height, width = track.size
    return int(((np.minimum(cx, cy) < side / 2) | (cx + side / 2 > width) | (cy + side / 2 > height)).sum())


def _crop_clips(path: Path, track: FaceTrack, resolution: int) -> list[np.ndarray]:
    """uint8 [n, R, R, 3] frames of each clip of `track`, decoding the video a second time."""
    clips = [np.empty((b - a, resolution, resolution, 3), np.uint8) for a, b in track.clips]
    owner = np.full(len(track.boxes), -1)
    for k, (a, b) in enumerate(track.clips):
        owner[a:b] = k
    count = 0
    for t, frame in enumerate(_decode(path, track.fps)):
        count += 1
        if t < len(owner) and owner[t] >= 0:
            clips[owner[t]][t - track.clips[owner[t]][0]] = crop_face(frame, *track.crops[t], resolution)
    if count != len(owner):
        raise UnusableVideo(CORRUPT, f"decoding gave {count} frames, but {len(owner)} the first time")
    return clips


def _skip(job: _Job, reason: str, detail: str) -> tuple[_Job, dict, list[np.ndarray]]:
    """The _run_job result of a job whose video is skipped."""
    return job, {"source": job.source, "reason": reason, "detail": detail}, []


def _run_job(job: _Job) -> tuple[_Job, dict, list[np.ndarray]]:
    """Prepare one video: (job, its report entry, its clips' frames); a failure becomes a skip entry."""
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
        "seconds": round(time.monotonic() - started, 2),
    }
    return job, entry, clips


def _results(jobs: list[_Job], workers: int) -> Iterator[tuple[_Job, dict, list[np.ndarray]]]:
    """_run_job of each job as it finishes, on `workers` processes (in this one for one worker or job)."""
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            yield _run_job(job)
        return
    queue = iter(jobs)
    # spawn, not fork: a forked copy of a process that has used torch's thread pool can deadlock.
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"))
    pending: dict[Future, _Job] = {}
    try:
        # Two jobs per worker in flight: finished crops wait in memory until they are written.
        for job in itertools.islice(queue, 2 * workers):
            pending[pool.submit(_run_job, job)] = job
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
                    pending[pool.submit(_run_job, following)] = following
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
                jobs.append(_Job(file, relative, name, fps, resolution, margin, min_frames))
        saved = time.monotonic()
        try:
            bar = tqdm(
                _results(jobs, workers), total=len(jobs), desc="prepare", unit="video", disable=not progress
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


def _run_cli(args: argparse.Namespace) -> int:
    try:
        report = prepare(
            args.source, args.dest, args.resolution, args.fps, args.workers, args.min_frames, args.margin
        )
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"stylevid prepare: {exc}") from exc
    print(report.summary())
    return 0 if report.prepared or report.resumed else 1


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `prepare` command (real face videos -> dataset) to the `stylevid` command's subparsers."""
    command = subparsers.add_parser(
        "prepare",
        help="crop the faces of real videos into a stylevid dataset",
        description=__doc__.split("\n\n")[0],
        epilog="Run it again to resume: videos already in the dataset are kept. A .zip is complete only when"
        " a run ends (a killed run starts over); a folder resumes even after a kill.",
    )
    command.add_argument(
        "--source", required=True, help="folder searched for .mp4/.avi/.mov/.mkv (recursively)"
    )
    command.add_argument("--dest", required=True, help="dataset folder, or a path ending in .zip")
    command.add_argument(
        "--resolution", type=int, default=256, help="side of the square frames (default 256)"
    )
    command.add_argument(
        "--fps", type=float, default=None, help="dataset frame rate (default: the most common of the sources)"
    )
    command.add_argument("--workers", type=int, default=2, help="processes, one video each (default 2)")
    command.add_argument(
        "--min-frames", type=int, default=16, help="shortest clip kept, in frames (default 16)"
    )
    command.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"crop side / face box side (default {DEFAULT_MARGIN}: FFHQ's framing, hair to chin)",
    )
    command.set_defaults(run=_run_cli)
    return command
