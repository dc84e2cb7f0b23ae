"""`stylevid train` from the command line: resume with changed settings, and a NaN told as a message."""

import json

import numpy as np
from tiny import tiny_training

from stylevid.checkpoint import load_checkpoint
from stylevid.cli import console
from stylevid.data.writer import DatasetWriter
from stylevid.training import losses
from stylevid.training.run import open_dataset
from stylevid.training.trainer import Trainer


def _run_with_snapshot(tmp_path):
    data = tmp_path / "ds"
    with DatasetWriter(data, 25.0, 16) as writer:
        for i in range(4):
            writer.add_video(f"v{i}", np.full((12, 16, 16, 3), 40 * i, dtype=np.uint8))
    config = tiny_training()
    trainer = Trainer(config, open_dataset(data, config), tmp_path / "run")
    trainer.step()
    trainer.snapshot()
    return data, tmp_path / "run"


def test_resume_takes_new_settings_from_the_command_line(tmp_path):
    data, run = _run_with_snapshot(tmp_path)
    argv = ["train", "--data", str(data), "--resume", str(run), "--workers", "0"]
    assert console([*argv, "--lr-g", "0.001", "--r1-gamma", "4", "--kimg", "0.012"]) == 0
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    changed = records[0]["resumed"]["changed"]
    assert changed == {"lr_g": [0.0025, 0.001], "r1_gamma": [1.0, 4.0], "kimg": [0.016, 0.012]}
    assert records[-1]["kimg"] == 0.012
    latest = json.loads((run / "latest.json").read_text())
    assert load_checkpoint(run / latest["snapshot"]).config["training"]["lr_g"] == 0.001


def test_a_nan_is_reported_as_a_message_with_the_resume_command(tmp_path, monkeypatch, capsys):
    data, run = _run_with_snapshot(tmp_path)
    monkeypatch.setattr(losses, "gan_discriminator", lambda scores, real: scores["video"] * float("nan"))
    status = console(["train", "--data", str(data), "--resume", str(run), "--workers", "0"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "the D loss is nan" in err and f"stylevid train --resume {run} --lr-g" in err
