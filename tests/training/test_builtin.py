"""Making a built-in model: a snapshot's EMA generator, judged by the evaluation probes, written loadable."""

import json

import numpy as np
import pytest
import torch
from tiny import ClipsInMemory, tiny_training

import stylevid
from stylevid.data.writer import DatasetWriter
from stylevid.training.builtin import export_builtin
from stylevid.training.trainer import Trainer


def test_a_run_becomes_a_builtin_with_its_scores(tmp_path):
    clips = ClipsInMemory()
    trainer = Trainer(tiny_training(), clips, tmp_path / "run")
    trainer.train(progress=False)
    with DatasetWriter(tmp_path / "data", 25.0, 16) as writer:
        for i, video in enumerate(clips.videos):
            frames = ((video.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
            writer.add_video(f"v{i}", np.ascontiguousarray(frames))
    (tmp_path / "package").mkdir()
    info = export_builtin(tmp_path / "run", tmp_path / "data", folder=tmp_path / "package")
    written = tmp_path / "package" / "synth64.safetensors"
    saved = json.loads(written.with_suffix(".json").read_text())
    assert saved == json.loads(json.dumps(info))  # the JSON beside it holds what was returned
    assert saved["kimg"] == pytest.approx(trainer.nimg / 1000) and saved["frame_fd16"] > 0
    scores = saved["leakage"]
    assert 0 <= scores["raw_leakage"] <= 1 and scores["floor"] > 0
    assert scores["leakage"] == pytest.approx(
        (scores["raw_leakage"] - scores["floor"]) / (0.75 - scores["floor"])
    )
    gen = stylevid.load(written)
    ema = trainer.G_ema.state_dict()
    assert all(torch.equal(v, ema[k]) for k, v in gen.generator.state_dict().items())
