"""The dataset writer: round trips (folder and zip), the documented layout, crash safety, resume, checks."""

import json
import os
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image
from random_datasets import NAMES, SIZE, check_dataset, clip, factors, temps, write

from stylevid.data.index import read_index
from stylevid.data.writer import DatasetWriter


@pytest.mark.parametrize("target", ["ds", "ds.zip"])
def test_round_trip_keeps_frames_factors_and_settings_exactly(tmp_path, target):
    path = tmp_path / target
    videos = [clip(i, t) for i, t in enumerate([3, 5, 4])]
    with DatasetWriter(path, 29.97, SIZE, NAMES) as writer:
        writer.add_video("video_0", videos[0], factors(0, 3), source="clips/a.mp4")
        # An iterable of frames is streamed.
        writer.add_video("video_1", iter(list(videos[1])), factors(1, 5))
        writer.add_video("video_2", videos[2], factors(2, 4))
    check_dataset(path, videos)
    index = read_index(path)
    assert (index.fps, index.resolution) == (29.97, SIZE)
    assert index.factor_names == {k: tuple(v) for k, v in NAMES.items()}
    assert [v.source for v in index.videos] == ["clips/a.mp4", None, None]
    assert temps(tmp_path) == [] and (target == "ds.zip" or temps(path) == [])


def test_folder_layout_matches_the_documented_format(tmp_path):
    write(tmp_path / "ds", [2])
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["format"] == "stylevid-dataset" and meta["format_version"] == 1
    assert meta["fps"] == 30.0 and meta["resolution"] == SIZE and meta["factor_names"] == NAMES
    (video,) = meta["videos"]
    assert video["name"] == "video_0" and video["frames"] == 2 and "source" not in video
    assert np.array(video["factors"]["pose"]).shape == (2, 3)
    assert sorted(p.name for p in (tmp_path / "ds" / "video_0").iterdir()) == ["000000.png", "000001.png"]
    with Image.open(tmp_path / "ds" / "video_0" / "000001.png") as image:
        assert image.format == "PNG" and image.size == (SIZE, SIZE)


def test_zip_has_the_folder_layout(tmp_path):
    write(tmp_path / "ds.zip", [2, 1], names=None)
    with zipfile.ZipFile(tmp_path / "ds.zip") as archive:
        assert sorted(archive.namelist()) == [
            "dataset.json",
            "video_0/000000.png",
            "video_0/000001.png",
            "video_1/000000.png",
        ]
        assert json.loads(archive.read("dataset.json"))["factor_names"] is None


def test_resume_after_a_kill_replaces_leftovers(tmp_path):
    path = tmp_path / "ds"
    videos = write(path, [3, 2])
    # What a kill leaves: a half-written video's temporary folder, dataset.json's temporary file, and a
    # complete folder renamed into place just before the kill, not yet in dataset.json.
    (path / ".0123456789ab.tmp").mkdir()
    Image.fromarray(clip(9, 1)[0]).save(path / ".0123456789ab.tmp" / "000000.png")
    (path / ".dataset.json.0123456789ab.tmp").write_text('{"format": "stylevid-da')
    (path / "video_2").mkdir()
    Image.fromarray(clip(9, 1)[0]).save(path / "video_2" / "000000.png")
    with DatasetWriter(path, 30.0, SIZE, NAMES) as writer:
        assert temps(path) == []
        assert [writer.has_video(f"video_{i}") for i in range(3)] == [True, True, False]
        videos += [clip(2, 4), clip(3, 2)]
        writer.add_video("video_2", videos[2], factors(2, 4))
        writer.add_video("video_3", videos[3], factors(3, 2))
    check_dataset(path, videos)


KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from random_datasets import clip, factors, NAMES, SIZE
from stylevid.data.writer import DatasetWriter

def frames(seed):
    for i, frame in enumerate(clip(seed, 4)):
        if seed == 3 and i == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        yield frame

writer = DatasetWriter({path!r}, 30.0, SIZE, NAMES)
for seed in range(5):
    writer.add_video(f"video_{{seed}}", frames(seed), factors(seed, 4))
"""


def test_a_process_killed_while_writing_can_be_resumed(tmp_path):
    path = tmp_path / "ds"
    script = KILLED_WRITER.format(tests=os.path.dirname(__file__), path=str(path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    # Killed inside video_3: at most videos 0-2 are complete, and nothing half-written shows.
    assert {p.name for p in path.iterdir() if not p.name.startswith(".")} <= {
        "dataset.json",
        "video_0",
        "video_1",
        "video_2",
    }
    with DatasetWriter(path, 30.0, SIZE, NAMES) as writer:
        for seed in range(5):
            if not writer.has_video(f"video_{seed}"):
                writer.add_video(f"video_{seed}", clip(seed, 4), factors(seed, 4))
    check_dataset(path, [clip(seed, 4) for seed in range(5)])


def broken(frames, after):
    """The frames, then an error after `after` of them (a renderer or decoder failing mid-video)."""
    for i, frame in enumerate(frames):
        if i == after:
            raise RuntimeError("renderer failed")
        yield frame


@pytest.mark.parametrize("target", ["ds", "ds.zip"])
def test_an_exception_inside_add_video_leaves_no_half_video(tmp_path, target):
    path = tmp_path / target
    with DatasetWriter(path, 30.0, SIZE, None) as writer:
        writer.add_video("video_0", clip(0, 3))
        with pytest.raises(RuntimeError, match="renderer failed"):
            writer.add_video("video_1", broken(clip(1, 3), after=2))
        assert not writer.has_video("video_1")
        assert temps(tmp_path) == [] or target == "ds.zip"
        if target == "ds":
            assert sorted(p.name for p in path.iterdir()) == ["dataset.json", "video_0"]
        writer.add_video("video_1", clip(1, 3))
    check_dataset(path, [clip(0, 3), clip(1, 3)], names=None)
    assert temps(tmp_path) == []


def test_a_full_disk_while_zipping_fails_cleanly(tmp_path, monkeypatch):
    path = tmp_path / "ds.zip"
    with pytest.raises(OSError, match="No space"):
        with DatasetWriter(path, 30.0, SIZE, None) as writer:
            writer.add_video("video_0", clip(0, 2))

            def full(*args, **kwargs):
                raise OSError(28, "No space left on device")

            monkeypatch.setattr(zipfile.ZipFile, "write", full)
            writer.add_video("video_1", clip(1, 2))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="failed earlier"):
        writer.add_video("video_2", clip(2, 2))


def test_an_exception_in_the_with_block_keeps_a_usable_zip_that_a_writer_extends(tmp_path):
    path = tmp_path / "ds.zip"
    with pytest.raises(KeyboardInterrupt):
        with DatasetWriter(path, 30.0, SIZE, NAMES) as writer:
            writer.add_video("video_0", clip(0, 2), factors(0, 2))
            raise KeyboardInterrupt
    check_dataset(path, [clip(0, 2)])
    # A killed run's temporary zip is removed by the next writer.
    (tmp_path / ".ds.zip.0123456789ab.tmp").write_bytes(b"PK\x03\x04 partial")
    with DatasetWriter(path, 30.0, SIZE, NAMES) as writer:
        assert ".ds.zip.0123456789ab.tmp" not in temps(tmp_path)
        assert writer.has_video("video_0") and not writer.has_video("video_1")
        writer.add_video("video_1", clip(1, 3), factors(1, 3))
    check_dataset(path, [clip(0, 2), clip(1, 3)])
    assert temps(tmp_path) == []


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda v, f: (v[:, :, :6], f), ValueError, r"\[8, 6, 3\].*resolution is 8"),
        (lambda v, f: (v.astype(np.float32), f), TypeError, "float32.*to_uint8"),
        (lambda v, f: (v[..., 0], f), ValueError, r"\[T, H, W, 3\]"),
        (lambda v, f: (v, {**f, "pose": f["pose"][:, :2]}), ValueError, r"'pose'.*\[4, 2\].*\[4, 3\]"),
        (lambda v, f: (v, {**f, "lighting": f["lighting"][:3]}), ValueError, r"'lighting'.*\[3, 2\]"),
        (lambda v, f: (v, {**f, "identity": [1.0, 2.0, 3.0]}), ValueError, r"'identity'.*\[3\].*\[2\]"),
        (lambda v, f: (v, {**f, "identity": [np.nan, 0.0]}), ValueError, "NaN"),
        (lambda v, f: (v, {k: f[k] for k in ("identity", "pose")}), ValueError, "keys"),
        (lambda v, f: (v, None), ValueError, "needs factors"),
        (lambda v, f: (v[:0], f), ValueError, r"'pose'.*\[4, 3\]"),
        (lambda v, f: (iter([]), None), ValueError, "needs factors|no frames"),
    ],
)
def test_bad_frames_and_factors_are_refused_before_anything_appears(tmp_path, change, error, match):
    frames, values = change(clip(0, 4), factors(0, 4))
    with DatasetWriter(tmp_path / "ds", 30.0, SIZE, NAMES) as writer:
        with pytest.raises(error, match=match):
            writer.add_video("video_0", frames, values)
        assert not writer.has_video("video_0")
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["dataset.json"]


def test_bad_writer_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="pose.*yaw"):
        DatasetWriter(tmp_path / "a", 30.0, SIZE, {**NAMES, "pose": ["pitch", "yaw", "roll"]})
    with pytest.raises(ValueError, match="keys"):
        DatasetWriter(tmp_path / "b", 30.0, SIZE, {"identity": ["a"]})
    with pytest.raises(ValueError, match="fps"):
        DatasetWriter(tmp_path / "c", 0, SIZE)
    with DatasetWriter(tmp_path / "d", 30.0, SIZE, None) as writer:
        with pytest.raises(ValueError, match="factor_names"):
            writer.add_video("video_0", clip(0, 2), factors(0, 2))
        with pytest.raises(ValueError, match="folder name"):
            writer.add_video("a/b", clip(0, 2))
        writer.add_video("video_0", clip(0, 2))
        with pytest.raises(ValueError, match="already"):
            writer.add_video("video_0", clip(0, 2))
    with pytest.raises(RuntimeError, match="closed"):
        writer.add_video("video_1", clip(0, 2))


def test_resuming_with_other_settings_or_into_a_foreign_folder_is_refused(tmp_path):
    write(tmp_path / "ds", [2])
    with pytest.raises(ValueError, match=r"'fps': 30.0.*'fps': 25.0"):
        DatasetWriter(tmp_path / "ds", 25.0, SIZE, NAMES)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="not empty"):
        DatasetWriter(tmp_path / "photos", 25.0, SIZE)
    assert (tmp_path / "photos" / "me.jpg").exists()


def test_a_finished_zip_opened_by_two_writers_at_once_is_kept_as_it_is(tmp_path):
    """Resuming a zip and adding nothing leaves the file untouched (no 36 MB rewrite), so two processes
    may open one finished dataset at once: the second's opening removes the first's temporary file,
    which its close would otherwise need (the ablation's two processes crashed on it)."""
    path = tmp_path / "ds.zip"
    videos = [clip(i, t) for i, t in enumerate([2, 3])]
    write(path, [2, 3])
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    first = DatasetWriter(path, 30.0, SIZE, NAMES)
    second = DatasetWriter(path, 30.0, SIZE, NAMES)
    second.close()
    first.close()
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert temps(tmp_path) == []
    check_dataset(path, videos)
    # A resumed writer that adds a video still writes the zip.
    with DatasetWriter(path, 30.0, SIZE, NAMES) as writer:
        writer.add_video("video_2", clip(2, 4), factors(2, 4))
    check_dataset(path, [*videos, clip(2, 4)])
