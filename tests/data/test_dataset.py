"""The clip loader: sampling, reproducibility across workers, dir/zip/mp4 parity, flips, skips, recovery."""

import math
import warnings

import numpy as np
import pytest
import torch
from random_datasets import damage_zip_member
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from stylevid.config import TRAJECTORY_FACTORS
from stylevid.data.clip_times import sample_times
from stylevid.data.dataset import VideoClipDataset
from stylevid.data.writer import DatasetWriter
from stylevid.video import save_video

NAMES = {
    "identity": ["a", "b"],
    "pose": ["yaw", "pitch", "roll"],
    "lighting": ["azimuth", "warmth"],
    "background": ["angle", "frequency"],
}
SIZE = 16


def smooth_clip(seed: int, frames: int) -> np.ndarray:
    """uint8 [T, S, S, 3]: moving colour waves, easy for H.264, clearly different from frame to frame."""
    t = np.arange(frames)[:, None, None, None]
    y, x = np.mgrid[0:SIZE, 0:SIZE][:, None, :, :, None] / SIZE
    phase = np.array([0.0, 2.0, 4.0]) + seed
    waves = np.sin(math.pi * (x + 0.5 * y) + 0.9 * t + phase) + 0.5 * np.cos(2 * y - 0.4 * t + phase)
    return np.round(127.5 + 80 * waves).astype(np.uint8)


def factors(seed: int, frames: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        key: rng.standard_normal((frames, len(n)) if key in TRAJECTORY_FACTORS else len(n))
        for key, n in NAMES.items()
    }


def build(path, lengths, names=NAMES) -> list[np.ndarray]:
    """A dataset of smooth videos video_i of the given lengths; returns their frames."""
    videos = [smooth_clip(i, t) for i, t in enumerate(lengths)]
    with DatasetWriter(path, 25.0, SIZE, names) as writer:
        for i, frames in enumerate(videos):
            writer.add_video(f"video_{i}", frames, factors(i, len(frames)) if names else None)
    return videos


def build_mp4s(folder, videos) -> None:
    folder.mkdir()
    for i, frames in enumerate(videos):
        save_video(
            torch.from_numpy(frames).permute(0, 3, 1, 2) / 127.5 - 1, folder / f"video_{i}.mp4", fps=25
        )


def same_items(a: dict, b: dict) -> bool:
    return (
        torch.equal(a["frames"], b["frames"])
        and torch.equal(a["times"], b["times"])
        and a["video"] == b["video"]
        and a.keys() == b.keys()
        and all(torch.equal(a["factors"][k], b["factors"][k]) for k in a.get("factors", {}))
    )


@pytest.mark.parametrize(("frames_per_clip", "max_gap"), [(2, 1), (3, 4), (3, 32), (5, 8), (8, 7)])
def test_random_times_are_increasing_in_range_and_span_at_most_max_gap(frames_per_clip, max_gap):
    for seed in range(300):
        length = frames_per_clip + seed % 40
        times = sample_times(length, frames_per_clip, max_gap, "random", np.random.default_rng(seed))
        assert times.dtype == np.int64 and times.shape == (frames_per_clip,)
        assert (np.diff(times) >= 1).all() and times[0] >= 0 and times[-1] < length
        assert times[-1] - times[0] <= max_gap


def test_random_spans_and_starts_cover_every_allowed_value():
    samples = [sample_times(50, 3, 6, "random", np.random.default_rng(seed)) for seed in range(400)]
    assert {int(t[-1] - t[0]) for t in samples} == {2, 3, 4, 5, 6}
    starts = {int(t[0]) for t in samples}
    assert min(starts) == 0 and max(starts) >= 40


@pytest.mark.parametrize(
    ("length", "k", "max_gap"), [(10, 4, 32), (100, 3, 32), (7, 7, 6), (33, 5, 32), (9, 1, 4)]
)
def test_uniform_times_are_evenly_spaced_from_frame_0(length, k, max_gap):
    times = sample_times(length, k, max_gap, "uniform", np.random.default_rng(0))
    again = sample_times(length, k, max_gap, "uniform", np.random.default_rng(1))
    assert np.array_equal(times, again) and times[0] == 0
    if k > 1:
        assert times[-1] == min(length - 1, max_gap)
        gaps = np.diff(times)
        assert gaps.min() >= 1 and gaps.max() - gaps.min() <= 1


def test_items_are_reproducible_and_change_with_epoch_and_seed(tmp_path):
    build(tmp_path / "ds", [40, 40])
    a, b = VideoClipDataset(tmp_path / "ds"), VideoClipDataset(tmp_path / "ds")
    assert all(same_items(a[i], b[i]) for i in range(2))
    item = a[0]
    assert item["frames"].dtype == torch.float32 and item["frames"].shape == (3, 3, SIZE, SIZE)
    assert item["times"].dtype == torch.float32 and -1 <= item["frames"].min() < item["frames"].max() <= 1
    assert item["factors"]["pose"].shape == (3, 3) and item["factors"]["lighting"].shape == (3, 2)
    assert item["factors"]["identity"].shape == (2,) and item["factors"]["background"].shape == (2,)
    epochs = set()
    for epoch in range(5):
        a.set_epoch(epoch)
        epochs.add(tuple(a[0]["times"].tolist()))
    assert len(epochs) > 1
    other = VideoClipDataset(tmp_path / "ds", seed=1)
    assert any(not torch.equal(other[i]["times"], b[i]["times"]) for i in range(2))


def test_directory_zip_and_mp4_give_the_same_clips(tmp_path):
    # 300 frames: past libx264's first keyframe interval (250), so reading them needs a real seek.
    videos = build(tmp_path / "ds", [300, 20, 37])
    build(tmp_path / "ds.zip", [300, 20, 37])
    build_mp4s(tmp_path / "mp4", videos)
    for sampling, max_gap in [("random", 32), ("uniform", 299)]:
        options = dict(frames_per_clip=4, max_gap=max_gap, sampling=sampling)
        folder, archive, mp4 = (VideoClipDataset(tmp_path / p, **options) for p in ("ds", "ds.zip", "mp4"))
        assert mp4.fps == 25.0 and mp4.factor_names is None
        for epoch in range(3):
            for dataset in (folder, archive, mp4):
                dataset.set_epoch(epoch)
            for i in range(3):
                a, b, c = folder[i], archive[i], mp4[i]
                assert same_items(a, b)
                assert torch.equal(a["times"], c["times"]) and "factors" not in c
                flipped = a["frames"].flip(-1)
                error = (a["frames"] - c["frames"]).abs().mean()
                # Lossy H.264 stays close to the right frames, and far from the mirrored ones.
                assert error < 0.08 and error < (flipped - c["frames"]).abs().mean() / 4
    # Seeking found the right frames, not ones a frame away.
    last = VideoClipDataset(tmp_path / "mp4", frames_per_clip=2, max_gap=299, sampling="uniform", flip=False)
    direct = torch.from_numpy(videos[0][[0, 299]]).permute(0, 3, 1, 2) / 127.5 - 1
    neighbour = torch.from_numpy(videos[0][[0, 298]]).permute(0, 3, 1, 2) / 127.5 - 1
    error = (last[0]["frames"] - direct).abs().mean()
    assert error < 0.08 and error < (last[0]["frames"] - neighbour).abs().mean() / 4


def test_a_flip_mirrors_every_frame_of_a_clip_and_the_factors_follow(tmp_path):
    build(tmp_path / "ds", [12] * 10)
    flipping = VideoClipDataset(tmp_path / "ds", frames_per_clip=4)
    plain = VideoClipDataset(tmp_path / "ds", frames_per_clip=4, flip=False)
    flips = []
    for i in range(len(plain)):
        a, b = flipping[i], plain[i]
        assert torch.equal(a["times"], b["times"])
        flipped = not torch.equal(a["frames"], b["frames"])
        flips.append(flipped)
        fa, fb = a["factors"], b["factors"]
        if not flipped:
            assert all(torch.equal(fa[k], fb[k]) for k in fb)
            continue
        assert torch.equal(a["frames"], b["frames"].flip(-1))
        assert torch.equal(fa["pose"], fb["pose"] * torch.tensor([-1.0, 1.0, -1.0]))
        assert torch.equal(fa["lighting"], fb["lighting"] * torch.tensor([-1.0, 1.0]))
        torch.testing.assert_close(fa["background"][0], math.pi - fb["background"][0])
        assert fa["background"][1] == fb["background"][1] and torch.equal(fa["identity"], fb["identity"])
    assert any(flips) and not all(flips)


def test_unusable_entries_are_skipped_with_one_warning_each(tmp_path):
    path = tmp_path / "ds"
    build(path, [4, 4, 4, 2])
    (path / "video_1" / "000002.png").write_bytes(b"\x00garbage")
    (path / "video_2" / "readme.txt").write_text("not a frame")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = VideoClipDataset(path, frames_per_clip=3)
    messages = [str(w.message) for w in caught]
    assert [v.name for v in dataset.videos] == ["video_0", "video_2"] and len(dataset) == 2
    assert dict(dataset.skipped).keys() == {"video_1", "video_2/readme.txt", "video_3"}
    for name, reason in [
        ("video_1", "000002.png is not a readable png/jpg"),
        ("readme.txt", "not a .png/.jpg/.jpeg frame"),
        ("video_3", "has 2 frames, fewer than frames_per_clip=3"),
    ]:
        assert sum(name in m and reason in m for m in messages) == 1, messages
    assert sum("skipped 3 entries, 2 videos remain" in m for m in messages) == 1
    assert len(messages) == 4


def test_an_unreadable_mp4_is_skipped(tmp_path):
    build_mp4s(tmp_path / "mp4", [smooth_clip(0, 5)])
    (tmp_path / "mp4" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    with pytest.warns(UserWarning) as caught:
        dataset = VideoClipDataset(tmp_path / "mp4")
    assert "broken.mp4: cannot decode" in str(caught[0].message) and "skipped 1 entries" in str(
        caught[1].message
    )
    assert [v.name for v in dataset.videos] == ["video_0"] and dataset.skipped[0][0] == "broken.mp4"


def test_no_usable_video_or_a_wrong_resolution_is_a_clear_error(tmp_path):
    build(tmp_path / "ds", [2, 2])
    with pytest.raises(ValueError, match="no usable video of at least 3 frames.*video_0: has 2 frames"):
        with pytest.warns(UserWarning):
            VideoClipDataset(tmp_path / "ds")
    with pytest.raises(ValueError, match="16x16 frames but resolution=64"):
        VideoClipDataset(tmp_path / "ds", frames_per_clip=2, resolution=64)
    assert VideoClipDataset(tmp_path / "ds", frames_per_clip=2, resolution=16).resolution == 16
    with pytest.raises(ValueError, match="max_gap"):
        VideoClipDataset(tmp_path / "ds", frames_per_clip=4, max_gap=2)


def test_a_frame_damaged_after_indexing_is_replaced_by_the_next_video(tmp_path):
    build(tmp_path / "ds", [3, 3, 3])
    dataset = VideoClipDataset(tmp_path / "ds")
    frame = tmp_path / "ds" / "video_1" / "000001.png"
    frame.write_bytes(frame.read_bytes()[:60])
    with pytest.warns(UserWarning, match=r"video_1 \(cannot decode frame video_1/000001.png"):
        item = dataset[1]
    assert item["video"] == 2 and item["frames"].shape == (3, 3, SIZE, SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert same_items(dataset[1], item)
    # The replacement is what a process that never met the damage (another worker) chooses too.
    with pytest.warns(UserWarning, match="video_1"):
        assert same_items(VideoClipDataset(tmp_path / "ds")[1], item)


@pytest.mark.parametrize("target", ["ds", "ds.zip"])
def test_workers_and_persistent_workers_give_the_batches_of_one_process(tmp_path, target):
    build(tmp_path / target, [12, 20, 9, 15, 30])
    dataset = VideoClipDataset(tmp_path / target)
    # Read once here, so a zip handle is open in this process before the workers fork.
    dataset[0]

    def batches(loader, epoch):
        dataset.set_epoch(epoch)
        return list(loader)

    single = DataLoader(dataset, batch_size=2, num_workers=0)
    multi = DataLoader(dataset, batch_size=2, num_workers=2, persistent_workers=True)
    for epoch in (0, 1):
        expected, got = batches(single, epoch), batches(multi, epoch)
        assert len(expected) == len(got) == 3
        for a, b in zip(expected, got, strict=True):
            assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["times"], b["times"])
            assert torch.equal(a["video"], b["video"]) and torch.equal(
                a["factors"]["pose"], b["factors"]["pose"]
            )
    assert not torch.equal(batches(single, 0)[0]["times"], batches(single, 1)[0]["times"])


def test_distributed_sampler_partitions_the_videos(tmp_path):
    build(tmp_path / "ds", [5] * 6, names=None)
    dataset = VideoClipDataset(tmp_path / "ds")
    ranks = []
    for rank in (0, 1):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(1)
        loaded = [
            int(v) for batch in DataLoader(dataset, batch_size=2, sampler=sampler) for v in batch["video"]
        ]
        assert loaded == list(sampler) and "factors" not in dataset[0]
        ranks.append(set(loaded))
    assert ranks[0].isdisjoint(ranks[1]) and ranks[0] | ranks[1] == set(range(6))


def test_a_damaged_zip_member_is_replaced_and_named_with_its_zip(tmp_path):
    build(tmp_path / "ds.zip", [3, 3, 3])
    dataset = VideoClipDataset(tmp_path / "ds.zip")
    damage_zip_member(tmp_path / "ds.zip", "video_1/000001.png")
    with pytest.warns(UserWarning, match=r"ds\.zip: its member video_1/000001\.png is damaged"):
        assert dataset[1]["video"] == 2


def test_videos_unreadable_from_the_start_are_not_called_changed_after_indexing(tmp_path):
    build(tmp_path / "ds", [3, 3])
    dataset = VideoClipDataset(tmp_path / "ds")
    assert dataset[0]["video"] == 0
    for frame in (tmp_path / "ds").glob("video_*/*.png"):
        # The header stays readable, so indexing accepts the frames; their pixels are gone.
        frame.write_bytes(frame.read_bytes()[:60])
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="loaded before.*changed or was"):
        dataset[1]
    with pytest.warns(UserWarning), pytest.raises(RuntimeError) as caught:
        VideoClipDataset(tmp_path / "ds")[1]
    message = str(caught.value)
    assert "none of the 2 videos" in message and "could be loaded" in message
    assert "after it was indexed" not in message and "check that the files decode" in message
