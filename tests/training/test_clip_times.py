"""Fake clips: the same (start, gaps) distribution as real ones, and starts over every time G renders."""

from collections import Counter

import numpy as np
import pytest
from scipy import stats
from tiny import tiny_config, tiny_training

from stylevid.data.dataset import VideoClipDataset
from stylevid.data.writer import DatasetWriter
from stylevid.metrics.fvd import PROTOCOLS
from stylevid.training.config import Disentangle, train_preset
from stylevid.training.trainer import Trainer

LENGTH, K, MAX_GAP, DRAWS = 30, 3, 6, 1500


def _fake_times(trainer, draws):
    rows = []
    for step in range(draws // trainer.cfg.batch):
        _, t = trainer._sample_fake(trainer._rng_for(step, 0))
        rows.append(t.long().numpy())
    return np.concatenate(rows)


# Only the fake clips' times are drawn here: no data, so no teacher (its spread is measured on data).
NO_TEACHER = Disentangle(teacher="none")


def test_real_and_fake_clips_have_the_same_starts_and_gaps(tmp_path):
    with DatasetWriter(tmp_path / "ds", 25.0, 16) as writer:
        writer.add_video("v", np.zeros((LENGTH, 16, 16, 3), dtype=np.uint8))
    real_set = VideoClipDataset(tmp_path / "ds", frames_per_clip=K, max_gap=MAX_GAP, flip=False)
    real = np.stack([real_set.item(0, epoch)["times"].long().numpy() for epoch in range(DRAWS)])
    model = tiny_config()
    trainer = Trainer(
        tiny_training(model=model, max_gap=MAX_GAP, video_frames=LENGTH, disentangle=NO_TEACHER),
        None,
        tmp_path / "run",
    )
    fake = _fake_times(trainer, DRAWS)
    assert len(fake) == DRAWS
    # Gaps: a chi-square test of the joint (gap1, gap2) table; starts: a two-sample KS test.
    keys = sorted({tuple(g) for g in np.diff(np.concatenate([real, fake]), axis=1)})
    table = [[Counter(map(tuple, np.diff(x, axis=1)))[key] for key in keys] for x in (real, fake)]
    assert stats.chi2_contingency(table).pvalue > 1e-3
    assert stats.ks_2samp(real[:, 0], fake[:, 0]).pvalue > 1e-3


@pytest.mark.parametrize("preset", ["synth64", "ffs256"])
def test_fake_clips_start_anywhere_in_what_fvd_renders(preset):
    cfg = train_preset(preset)
    longest = max(p.frames * p.step for p in PROTOCOLS.values())
    assert cfg.video_frames >= longest
    # A tiny model with the preset's clip settings: where do its fake clips fall?
    settings = dict(max_gap=cfg.max_gap, video_frames=cfg.video_frames, disentangle=NO_TEACHER)
    trainer = Trainer(tiny_training(**settings), None, "unused")
    times = _fake_times(trainer, 2000)
    covered = np.histogram(times, bins=longest // 16, range=(0, longest))[0]
    assert (covered > 0).all(), f"frames 0..{longest - 1} in 16-frame bins, trained: {covered.tolist()}"
