"""Identity metrics: values against naive loops and generators with known answers, and frames in which
the real MTCNN finds no face."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_face_embedders import astronaut, small_embedder

from stylevid.codes import Codes
from stylevid.metrics.identity import (
    id_consistency,
    id_consistency_real,
    id_diversity,
    id_preservation,
)

SWAPPABLE = ("pose", "lighting", "background")
SIZE = 64  # the stub generators' frames


class StubGenerator:
    """Samples real codes (the tiny model's) and paints frames [N, T, 3, 64, 64] from some factors only.

    The picture of a video is a fixed random function of the chosen factors' vectors (pose and lighting:
    their motion codes z), the same at every time.
    """

    resolution = SIZE

    def __init__(self, video_generator, factors=("identity",)):
        self.video_generator = video_generator
        self.factors = factors
        codes = video_generator.sample(1)
        width = sum(self.features(codes, f).shape[1] for f in factors)
        self.paint = torch.randn(width, 3 * 8 * 8, generator=torch.Generator().manual_seed(1))

    @staticmethod
    def features(codes: Codes, factor: str) -> torch.Tensor:
        value = getattr(codes, factor)
        return value.z if factor in ("pose", "lighting") else value

    def sample(self, n, seed=0, frames=256, psi=1.0) -> Codes:
        return self.video_generator.sample(n, seed, frames, psi)

    def render(self, codes: Codes, t) -> torch.Tensor:
        x = torch.cat([self.features(codes, f) for f in self.factors], dim=1)
        small = torch.tanh(x @ self.paint).reshape(-1, 3, 8, 8)
        frames = F.interpolate(small, size=SIZE, mode="nearest")
        return frames[:, None].expand(-1, len(torch.as_tensor(t).reshape(-1)), -1, -1, -1)


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.double(), b.double(), dim=0))


def embed(embedder, frame: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return embedder(frame[None])[0]


# The metrics against naive loops and known answers.


def test_consistency_is_the_mean_over_videos_of_the_mean_cos_over_frame_pairs(video_generator):
    embedder = small_embedder()
    result = id_consistency(video_generator, embedder, videos=3, frames=4, step=2, seed=5, align=False)
    frames = video_generator.render(video_generator.sample(3, 5, 7), torch.arange(4.0) * 2)
    per_video = []
    for video in frames:
        e = [embed(embedder, frame) for frame in video]
        per_video.append(np.mean([cos(e[i], e[j]) for i in range(4) for j in range(i + 1, 4)]))
    assert result["value"] == pytest.approx(np.mean(per_video), abs=1e-6)
    assert result["value"] < 0.9999  # the tiny generator's frames move: not trivially 1
    assert result["faces_found"] == 1.0 and result["videos_used"] == 3
    assert result["weights_sha256"] == {"small-test-net": "0" * 64} and result["embedder"] == "small-test-net"


def test_consistency_of_real_videos_reads_the_dataset_at_the_same_times(tmp_path):
    from stylevid.data.writer import DatasetWriter

    rng = np.random.default_rng(3)
    # Three videos: 9 frames, 3 frames (shorter than the times asked: its own frames count), 2 frames
    # (step 2 finds only frame 0: one face, left out of the value).
    videos = [rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8) for n in (9, 3, 2)]
    with DatasetWriter(tmp_path / "real", 25.0, SIZE) as writer:
        for i, video in enumerate(videos):
            writer.add_video(f"v{i}", video)
    embedder = small_embedder()
    result = id_consistency_real(tmp_path / "real", embedder, videos=5, frames=4, step=2, align=False)
    per_video = []
    for video in videos[:2]:
        frames = torch.from_numpy(video[0:7:2]).permute(0, 3, 1, 2).float() / 127.5 - 1
        e = [embed(embedder, frame) for frame in frames]
        per_video.append(np.mean([cos(e[i], e[j]) for i in range(len(e)) for j in range(i + 1, len(e))]))
    assert result["value"] == pytest.approx(np.mean(per_video), abs=1e-6)
    assert result["videos"] == 2 and result["videos_used"] == 2  # the 2-frame video has no frame at 2
    assert result["faces_found"] == 1.0  # the short video's missing times are not frames without a face
    assert result["metric"] == "id_consistency_real" and result["embedder"] == "small-test-net"


def test_diversity_compares_videos_that_differ_only_in_identity(video_generator):
    embedder = small_embedder()
    result = id_diversity(video_generator, embedder, videos=3, frames=2, step=3, seed=2, align=False)
    codes = video_generator.sample(3, 2, 4)
    only_identity = Codes(
        codes.identity, codes.pose[[0, 0, 0]], codes.lighting[[0, 0, 0]], codes.background[[0, 0, 0]]
    )
    frames = video_generator.render(only_identity, torch.tensor([0.0, 3.0]))
    videos = [F.normalize(sum(embed(embedder, f).double() for f in video), dim=0) for video in frames]
    expected = np.mean([cos(videos[i], videos[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
    assert result["value"] == pytest.approx(expected, abs=1e-6)
    assert result["pairs"] == 3 and result["videos_used"] == 3


def test_preservation_compares_each_frame_with_the_frame_after_a_swap(video_generator):
    embedder = small_embedder()
    result = id_preservation(video_generator, embedder, videos=2, frames=3, step=1, seed=1, align=False)
    codes = video_generator.sample(4, 1, 3)
    kept, donors = codes[:2], codes[2:]
    before = video_generator.render(kept, 3)
    for factor in SWAPPABLE:
        after = video_generator.render(kept.replace(**{factor: getattr(donors, factor)}), 3)
        expected = np.mean(
            [
                cos(embed(embedder, b), embed(embedder, a))
                for b, a in zip(before.flatten(0, 1), after.flatten(0, 1), strict=True)
            ]
        )
        assert result[factor] == pytest.approx(expected, abs=1e-6)
    assert result["value"] == pytest.approx(np.mean([result[f] for f in SWAPPABLE]), abs=1e-12)
    assert result["pairs"] == 3 * 2 * 3


def test_a_generator_that_draws_identity_alone_keeps_it_perfectly(video_generator):
    stub, embedder = StubGenerator(video_generator), small_embedder()
    assert id_consistency(stub, embedder, videos=3, frames=3, align=False)["value"] == pytest.approx(
        1, abs=1e-6
    )
    preserved = id_preservation(stub, embedder, videos=3, frames=2, align=False)
    assert all(preserved[f] == pytest.approx(1, abs=1e-6) for f in (*SWAPPABLE, "value"))
    assert id_diversity(stub, embedder, videos=4, frames=1, align=False)["value"] < 0.99


def test_preservation_names_the_factor_that_changes_the_face(video_generator):
    stub = StubGenerator(video_generator, factors=("identity", "lighting"))
    preserved = id_preservation(stub, small_embedder(), videos=3, frames=2, align=False)
    assert preserved["pose"] == pytest.approx(1, abs=1e-6)
    assert preserved["background"] == pytest.approx(1, abs=1e-6)
    assert preserved["lighting"] < 0.99


def test_results_are_deterministic_and_plain(video_generator):
    embedder = small_embedder()
    settings = dict(videos=2, frames=2, seed=3, align=False)
    first = id_preservation(video_generator, embedder, **settings)
    assert id_preservation(video_generator, embedder, **settings, progress=False) == first
    # Another batch size: the same up to float32 rounding (BLAS sums in a batch-size-dependent order).
    other = id_preservation(video_generator, embedder, **settings, batch=1)
    assert other.keys() == first.keys()
    assert all(other[k] == pytest.approx(first[k], abs=1e-6) for k in SWAPPABLE)
    assert all(type(first[k]) in (float, int, bool, str) for k in first if k != "weights_sha256")


def test_bad_settings_are_refused_with_the_way_out(video_generator):
    embedder = small_embedder()
    with pytest.raises(ValueError, match="identity"):
        id_preservation(video_generator, embedder, factors=("identity",), align=False)
    with pytest.raises(ValueError, match="needs 2 or more"):
        id_diversity(video_generator, embedder, videos=1, align=False)
    with pytest.raises(ValueError, match="frames=0"):
        id_consistency(video_generator, embedder, frames=0, align=False)


# Frames without a face: the real MTCNN on a real face and on black frames.


class FaceOrNothing(StubGenerator):
    """Video n shows the astronaut in every frame when its identity code's first value is >= 0, else black."""

    resolution = 256

    def render(self, codes: Codes, t) -> torch.Tensor:
        face = (codes.identity[:, 0] >= 0).float().reshape(-1, 1, 1, 1, 1)
        frames = astronaut(self.resolution)[None, None] * face
        return frames.expand(-1, len(torch.as_tensor(t).reshape(-1)), -1, -1, -1)


def test_frames_without_a_face_are_counted_and_left_out(video_generator):
    stub = FaceOrNothing(video_generator)
    has_face = video_generator.sample(4, 0, 2).identity[:, 0] >= 0
    assert 0 < int(has_face.sum()) < 4, "the seed must give videos with and without a face"
    with pytest.warns(UserWarning, match=f"no face in {2 * int((~has_face).sum())} of 8 frames"):
        result = id_consistency(stub, small_embedder(), videos=4, frames=2, step=1)
    assert result["faces_found"] == pytest.approx(float(has_face.float().mean()))
    assert result["videos_used"] == int(has_face.sum()) and result["value"] == pytest.approx(1, abs=1e-6)
    assert set(result["weights_sha256"]) == {"small-test-net", "mtcnn-pnet", "mtcnn-rnet", "mtcnn-onet"}


def test_frames_mtcnn_cannot_read_point_to_align_false(video_generator):
    with pytest.raises(ValueError, match="none of the 4 frames .16x16.*align=False"):
        id_consistency(video_generator, small_embedder(), videos=2, frames=2)
