"""stylevid prepare: a filmed face photo is found, followed smoothly and cropped; bad videos are skipped."""

import argparse
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from stylevid.data.faces import DEFAULT_MARGIN, LIFT, face_detector
from stylevid.data.files import DatasetFiles
from stylevid.data.index import read_index
from stylevid.data.prepare import (
    CORRUPT,
    NO_FACE,
    TOO_SHORT,
    clip_names,
    prepare,
    register_cli,
    track_faces,
    video_names,
)
from stylevid.data.prepare import jobs as jobs_module
from stylevid.data.prepare.decode import decode_frames
from stylevid.data.prepare.track import face_clips
from stylevid.data.reader import read_frames
from stylevid.video import save_video

FRAMES, WIDTH, HEIGHT, FPS = 24, 256, 192, 25
RESOLUTION = 64


def _film(photo: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [T, H, W, 3]: a camera panning right and zooming in on `photo`; its windows [T, 4] x, y, w, h."""
    ease = (1 - np.cos(np.pi * np.arange(frames) / (frames - 1))) / 2
    width = 440 - 120 * ease
    height = width * HEIGHT / WIDTH
    cx, cy = 235 + 50 * ease, 168 - 28 * ease
    windows = np.stack([cx - width / 2, cy - height / 2, width, height], 1)
    image = Image.fromarray(photo)
    film = [
        np.asarray(image.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS, box=(x, y, x + w, y + h)))
        for x, y, w, h in windows
    ]
    return np.stack(film), windows


def _save(frames: np.ndarray, path) -> None:
    save_video(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1, path, fps=FPS)


def _gradient(frames: int) -> np.ndarray:
    """uint8 [T, H, W, 3]: smooth colour ramps sliding sideways, with nothing face-like."""
    x = np.linspace(0, 0.5, frames)[:, None] + np.linspace(0, 1, WIDTH)  # [T, W]
    y = np.linspace(0, 1, HEIGHT)[None, :, None, None]
    ramps = np.stack([np.sin(2 * np.pi * x), np.cos(3 * np.pi * x), x % 1], -1)[:, None]  # [T, 1, W, 3]
    return ((ramps * 0.4 + 0.3 + 0.2 * y) * 255).astype(np.uint8)


def _crops_of(boxes: np.ndarray) -> np.ndarray:
    """[T, 3] crop centre x, y and side that the documented framing gives for face boxes [T, 4]."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2,
            (boxes[:, 1] + boxes[:, 3]) / 2 - LIFT * height,
            DEFAULT_MARGIN * np.maximum(width, height),
        ],
        1,
    )


@pytest.fixture(scope="module")
def detector():
    return face_detector()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A source folder: a filmed face, a faceless video, a too short one, random bytes named .mp4."""
    root = tmp_path_factory.mktemp("sources")
    film, windows = _film(data.astronaut(), FRAMES)
    _save(film, root / "people" / "astronaut take 1.mp4")
    _save(_gradient(FRAMES), root / "empty" / "gradient.mp4")
    _save(_gradient(6), root / "short.mp4")
    (root / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
    return root, windows


@pytest.fixture(scope="module")
def prepared(sources, tmp_path_factory):
    root, _ = sources
    dest = tmp_path_factory.mktemp("out") / "faces"
    return prepare(root, dest, resolution=RESOLUTION, workers=2, progress=False), dest


@pytest.fixture(scope="module")
def expected_crops(sources, detector):
    """[T, 3] crops framed around the photo's face box, carried through the camera's known windows."""
    _, windows = sources
    boxes, _ = detector.detect(data.astronaut())
    face = boxes[0].astype(np.float64)
    scale = (WIDTH / windows[:, 2])[:, None]
    x, y = (face[[0, 2]] - windows[:, [0]]) * scale, (face[[1, 3]] - windows[:, [1]]) * scale
    return _crops_of(np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], 1))


@pytest.fixture(scope="module")
def track(sources, detector):
    root, _ = sources
    return track_faces(root / "people" / "astronaut take 1.mp4", detector=detector)


def test_report_lists_every_video_with_its_outcome(prepared, expected_crops):
    report, dest = prepared
    assert [entry["source"] for entry in report.prepared] == ["people/astronaut take 1.mp4"]
    entry = report.prepared[0]
    assert entry["names"] == ["people__astronaut_take_1"]
    assert entry["frames"] == entry["source_frames"] == FRAMES
    assert entry["detection_rate"] == 1.0
    assert abs(entry["mean_crop_side"] / expected_crops[:, 2].mean() - 1) < 0.08
    reasons = {entry["source"]: entry["reason"] for entry in report.skipped}
    assert reasons == {"empty/gradient.mp4": NO_FACE, "broken.mp4": CORRUPT, "short.mp4": TOO_SHORT}
    assert report.fps == FPS
    saved = json.loads((dest.parent / "faces.prepare-report.json").read_text())
    assert saved["prepared"][0]["detection_rate"] == 1.0
    assert {entry["reason"] for entry in saved["skipped"]} == {NO_FACE, CORRUPT, TOO_SHORT}
    assert report.path in report.summary() and "skipped 3" in report.summary()


def test_crop_follows_the_face(track, expected_crops):
    assert track.clips == [(0, FRAMES)]
    side = expected_crops[:, 2]
    centre_error = np.hypot(*(track.crops[:, :2] - expected_crops[:, :2]).T)
    # The camera moves the face ~50 px and zooms 1.4x; the crop stays within a few pixels of it.
    assert centre_error.max() < 0.05 * side.min(), centre_error
    assert np.abs(track.crops[:, 2] / side - 1).max() < 0.08


def test_crop_is_smooth(track):
    detected = _crops_of(track.boxes)
    jitter, smoothed = np.diff(detected, 2, axis=0), np.diff(track.crops, 2, axis=0)
    jitter_rms, smoothed_rms = np.sqrt((jitter**2).mean(0)), np.sqrt((smoothed**2).mean(0))
    # The detector's jitter is gone: the remaining curvature is the camera's own (< 1 px per frame²).
    assert (smoothed_rms < 0.3 * jitter_rms).all(), (smoothed_rms, jitter_rms)
    assert np.abs(smoothed).max() < 0.03 * track.crops[:, 2].min()


def test_output_frames_are_centred_faces(prepared, detector):
    _, dest = prepared
    index = read_index(dest)
    (video,) = index.videos
    assert (index.resolution, index.fps, video.frames) == (RESOLUTION, FPS, FRAMES)
    assert video.source == "people/astronaut take 1.mp4"
    files = DatasetFiles(dest)
    frames = read_frames(files, video, [0, FRAMES // 2, FRAMES - 1])
    files.close()
    assert frames.shape == (3, RESOLUTION, RESOLUTION, 3)
    for frame in frames:
        # MTCNN finds no face under ~20 px reliably; look at the frame 3x larger.
        boxes, _ = detector.detect(
            np.asarray(Image.fromarray(frame).resize((192, 192), Image.Resampling.BICUBIC))
        )
        x0, y0, x1, y1 = boxes[0] / 3
        assert abs((x0 + x1) / 2 - RESOLUTION / 2) < 0.08 * RESOLUTION
        assert abs((y0 + y1) / 2 - LIFT * (y1 - y0) - RESOLUTION / 2) < 0.08 * RESOLUTION
        assert abs(max(x1 - x0, y1 - y0) * DEFAULT_MARGIN / RESOLUTION - 1) < 0.15


def test_rerun_resumes_without_redoing_finished_videos(prepared, sources, tmp_path, monkeypatch):
    report, dest = prepared
    root, _ = sources
    copy = tmp_path / "faces"
    shutil.copytree(dest, copy)
    shutil.copy(dest.parent / "faces.prepare-report.json", tmp_path / "faces.prepare-report.json")
    frame = copy / "people__astronaut_take_1" / "000000.png"
    written = frame.stat().st_mtime_ns
    ran = []
    run_job = jobs_module.run_job
    monkeypatch.setattr(jobs_module, "run_job", lambda job: ran.append(job.source) or run_job(job))
    again = prepare(root, copy, resolution=RESOLUTION, workers=1, progress=False)
    assert sorted(ran) == ["broken.mp4", "empty/gradient.mp4", "short.mp4"]
    assert again.prepared == []
    assert again.resumed == report.prepared  # the earlier entry, carried over
    assert frame.stat().st_mtime_ns == written
    assert "already in the dataset" in again.summary()


def test_a_long_gap_splits_the_video_into_clips_that_resume_one_by_one(tmp_path):
    film, _ = _film(data.astronaut(), FRAMES)
    film[5:19] = _gradient(14)  # 14 frames without a face: longer than MAX_GAP_SECONDS at 25 fps
    _save(film, tmp_path / "in" / "cut.mp4")
    dest = tmp_path / "faces"
    (entry,) = prepare(tmp_path / "in", dest, RESOLUTION, workers=1, min_frames=4, progress=False).prepared
    assert entry["names"] == ["cut.clip1", "cut.clip2"] and entry["clips"] == [[0, 5], [19, 24]]
    assert sorted((v.name, v.frames) for v in read_index(dest).videos) == [("cut.clip1", 5), ("cut.clip2", 5)]
    # A run killed between the clips leaves clip2 (written first); the next run adds only clip1.
    shutil.rmtree(dest / "cut.clip1")
    kept = (dest / "cut.clip2" / "000000.png").stat().st_mtime_ns
    again = prepare(tmp_path / "in", dest, RESOLUTION, workers=1, min_frames=4, progress=False)
    assert [e["names"] for e in again.prepared] == [["cut.clip1", "cut.clip2"]]
    assert (dest / "cut.clip2" / "000000.png").stat().st_mtime_ns == kept
    assert {v.name for v in read_index(dest).videos} == {"cut.clip1", "cut.clip2"}


@pytest.mark.parametrize("fps, shown", [(25, range(24)), (12.5, range(0, 24, 2)), (50, np.arange(48) // 2)])
def test_frame_rate_is_changed_by_repeating_or_dropping_frames(tmp_path, fps, shown):
    video = _gradient(24)
    video[:, :8, :8] = np.arange(24)[:, None, None, None] * 10  # the frame's index, readable after x264
    _save(video, tmp_path / "count.mp4")
    frames = list(decode_frames(tmp_path / "count.mp4", fps))
    assert [round(frame[:8, :8].mean() / 10) for frame in frames] == list(shown)


def test_video_names_are_sanitised_and_unique():
    sources = ["a/b c.mp4", "a/b c.avi", "a__b_c.mov", "x.y/z.mkv", "é/" + "long" * 100 + ".mp4"]
    names = video_names(sources)
    assert names[0] == "a__b_c" and names[3] == "x_y__z"
    assert len(set(names)) == len(names)
    assert all("." not in name and "/" not in name and len(name.encode()) <= 200 for name in names)
    assert video_names(sources) == names  # the same files get the same names on a rerun
    assert clip_names("v", 1) == ["v"] and clip_names("v", 2) == ["v.clip1", "v.clip2"]


def test_gaps_are_bridged_and_long_ones_split_clips():
    found = np.ones(60, bool)
    found[[0, 10, 11]] = False  # a 2-frame gap: bridged
    found[30:45] = False  # a 15-frame gap: ends the clip
    found[55:] = False
    assert face_clips(found, max_gap=5, min_frames=8) == [(1, 30), (45, 55)]
    assert face_clips(found, max_gap=5, min_frames=12) == [(1, 30)]


def test_cli_parses_and_reports(sources, tmp_path, capsys):
    top = argparse.ArgumentParser(prog="stylevid")
    register_cli(top.add_subparsers(dest="job", required=True))
    args = top.parse_args(
        ["prepare", "--source", "in", "--dest", "out.zip", "--fps", "30", "--min-frames", "8"]
    )
    assert (args.source, args.dest, args.resolution, args.fps, args.workers, args.min_frames) == (
        "in",
        "out.zip",
        256,
        30.0,
        2,
        8,
    )
    assert args.margin == DEFAULT_MARGIN
    root, _ = sources
    broken = tmp_path / "in"
    broken.mkdir()
    shutil.copy(root / "broken.mp4", broken)
    args = top.parse_args(["prepare", "--source", str(broken), "--dest", str(tmp_path / "out.zip")])
    assert args.run(args) == 1  # nothing usable
    out = capsys.readouterr().out
    assert "prepared 0 videos" in out and "corrupt 1" in out and "out.zip.prepare-report.json" in out
    args = top.parse_args(["prepare", "--source", str(tmp_path / "missing"), "--dest", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="missing"):
        args.run(args)
