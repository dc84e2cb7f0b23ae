"""FVD: protocols, the choice of real clips, the value of the pipeline, and the cache of real statistics."""

import numpy as np
import pytest
import torch

from stylevid.data.index import read_index
from stylevid.data.writer import DatasetWriter
from stylevid.metrics import fvd
from stylevid.metrics.fvd import Protocol

SIZE = 16
LENGTHS = [10, 12, 3, 9, 11, 10]  # video_2 is shorter than TINY.min_length
TINY = Protocol("tiny", clips=4, frames=4, step=2)

pytestmark = pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")


class CountingDetector(torch.nn.Module):
    """Two features per clip (brightness, contrast) and a count of the clips seen."""

    weights_sha256 = "counting-detector"

    def __init__(self):
        super().__init__()
        self.clips = 0

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        assert videos.dtype == torch.uint8 and videos.shape[1:3] == (TINY.frames, 3)
        self.clips += len(videos)
        x = videos.double().flatten(1) / 255
        return torch.stack([x.mean(1), x.std(1)], dim=1)


def add_videos(path, lengths, first=0):
    rng = np.random.default_rng(first)
    with DatasetWriter(path, 25.0, SIZE) as writer:
        for i, length in enumerate(lengths, first):
            writer.add_video(f"video_{i}", rng.integers(0, 256, (length, SIZE, SIZE, 3), dtype=np.uint8))


@pytest.fixture
def dataset(tmp_path):
    add_videos(tmp_path / "data", LENGTHS)
    return tmp_path / "data"


def test_protocols_are_stylegan_vs(dataset):
    p = fvd.PROTOCOLS
    assert (p["fvd2048_16f"].clips, p["fvd2048_16f"].frames, p["fvd2048_16f"].step) == (2048, 16, 1)
    assert (p["fvd2048_128f"].frames, p["fvd2048_128f"].min_length) == (128, 128)
    sub = p["fvd2048_128f_subsample8f"]
    assert (sub.frames, sub.step, sub.span, sub.min_length) == (16, 8, 120, 128)
    with pytest.raises(ValueError, match="fvd2048_16f"):
        fvd.real_clips(read_index(dataset), "fvd_typo")


def test_real_clips_are_one_per_long_video_at_a_random_offset(dataset):
    index = read_index(dataset)
    clips = fvd.real_clips(index, TINY, seed=3)
    assert [v.name for v, _ in clips] == ["video_0", "video_1", "video_3", "video_4"]
    for video, times in clips:
        assert len(times) == TINY.frames and np.all(np.diff(times) == TINY.step)
        assert 0 <= times[0] and times[-1] < video.frames
    assert fvd.real_clips(index, TINY, seed=3) == clips
    offsets = {tuple(t[0] for _, t in fvd.real_clips(index, TINY, seed=s)) for s in range(10)}
    assert len(offsets) > 1
    with pytest.warns(UserWarning, match="5 videos of at least 8 frames, fewer than the 6 real clips"):
        fvd.real_clips(index, Protocol("more", 6, 4, 2))
    with pytest.raises(ValueError, match="the longest has 12"):
        fvd.real_clips(index, Protocol("long", 1, 13))


def compute(video_generator, dataset, tmp_path, detector, **kwargs):
    settings = dict(protocol=TINY, batch=3, detector=detector, cache_dir=tmp_path / "cache", progress=False)
    return fvd.compute_fvd(video_generator, dataset, **{**settings, **kwargs})


def test_real_statistics_are_cached_under_everything_that_affects_them(video_generator, dataset, tmp_path):
    detector = CountingDetector()
    first = compute(video_generator, dataset, tmp_path, detector)
    assert detector.clips == 8
    assert first["num_real"] == first["num_fake"] == 4
    assert first["protocol"] == "tiny" and first["weights_sha256"] == "counting-detector"
    assert np.isfinite(first["value"]) and first["value"] >= 0

    second = compute(video_generator, dataset, tmp_path, detector)
    assert detector.clips == 12, "the real clips were embedded again"
    assert second == first

    compute(video_generator, dataset, tmp_path, detector, seed=1)
    assert detector.clips == 20, "another seed draws other real clips"
    compute(video_generator, dataset, tmp_path, detector, protocol=Protocol("tiny", 4, 4, 1))
    assert detector.clips == 28, "another protocol takes other frames"
    detector.weights_sha256 = "other-weights"
    compute(video_generator, dataset, tmp_path, detector)
    assert detector.clips == 36, "other weights give other features"
    detector.weights_sha256 = "counting-detector"
    add_videos(dataset, [9], first=len(LENGTHS))
    compute(video_generator, dataset, tmp_path, detector)
    assert detector.clips == 44, "a changed dataset has other statistics"


def test_the_value_is_the_distance_of_the_two_sides_statistics(video_generator, dataset, tmp_path):
    detector = CountingDetector()
    result = compute(video_generator, dataset, tmp_path, detector)
    real = fvd.real_statistics(dataset, TINY, detector, cache_dir=tmp_path / "fresh", progress=False)
    fake = fvd.generated_statistics(video_generator, TINY, detector, progress=False)
    assert real[2] == fake[2] == 4
    assert result["value"] == pytest.approx(
        fvd.frechet_distance(fake[0], fake[1], real[0], real[1]), rel=1e-12
    )


def test_a_generator_of_another_resolution_is_refused(video_generator, tmp_path):
    with DatasetWriter(tmp_path / "small", 25.0, 8) as writer:
        writer.add_video("v", np.zeros((10, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="makes 16x16 frames but .* holds 8x8"):
        compute(video_generator, tmp_path / "small", tmp_path, CountingDetector())


def test_a_detector_without_a_weights_hash_is_refused(video_generator, dataset, tmp_path):
    detector = CountingDetector()
    detector.weights_sha256 = None
    with pytest.raises(ValueError, match="weights_sha256"):
        compute(video_generator, dataset, tmp_path, detector)
