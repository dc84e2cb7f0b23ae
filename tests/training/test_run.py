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


def _run_with_snapshot(tmp_path, preset=None):
    data = tmp_path / "ds"
    with DatasetWriter(data, 25.0, 16) as writer:
        for i in range(4):
            writer.add_video(f"v{i}", np.full((12, 16, 16, 3), 40 * i, dtype=np.uint8))
    config = tiny_training()
    trainer = Trainer(config, open_dataset(data, config), tmp_path / "run", preset=preset)
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
    assert status == 1 and "Traceback" not in err
    assert "the D loss is nan" in err and f"stylevid train --resume {run} --lr-g" in err


def _other_dataset(tmp_path):
    data = tmp_path / "other"
    with DatasetWriter(data, 25.0, 16) as writer:
        for i in range(4):
            writer.add_video(f"w{i}", np.full((12, 16, 16, 3), 30 * i + 5, dtype=np.uint8))
    return data


def test_resume_refuses_another_dataset_unless_allowed_and_logs_it(tmp_path, capsys):
    data, run = _run_with_snapshot(tmp_path)
    other = _other_dataset(tmp_path)
    argv = ["train", "--data", str(other), "--resume", str(run), "--workers", "0", "--kimg", "0.008"]
    assert console(argv) == 2
    err = capsys.readouterr().err
    assert str(data) in err and str(other) in err and "--allow-new-data" in err
    assert not (run / "stats.jsonl").exists()
    assert console([*argv, "--allow-new-data"]) == 0
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    old, new = records[0]["resumed"]["changed"]["data"]
    assert old["path"] == str(data.resolve()) and new["path"] == str(other.resolve())
    latest = json.loads((run / "latest.json").read_text())
    assert latest["dataset"] == new


def test_resume_takes_the_dataset_from_the_run(tmp_path):
    _, run = _run_with_snapshot(tmp_path)
    assert console(["train", "--resume", str(run), "--workers", "0", "--kimg", "0.008"]) == 0
    assert json.loads((run / "latest.json").read_text())["nimg"] == 8


def test_resuming_a_finished_run_says_that_kimg_sets_the_new_total(tmp_path, capsys):
    data, run = _run_with_snapshot(tmp_path)
    assert console(["train", "--resume", str(run), "--workers", "0", "--kimg", "0.004"]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "--kimg sets the new total" in out and "--kimg 0.008" in out
    assert not (run / "stats.jsonl").exists()


def test_resume_refuses_a_preset_other_than_the_runs(tmp_path, capsys):
    data, run = _run_with_snapshot(tmp_path, preset="synth64")
    assert console(["train", "--resume", str(run), "--preset", "ffs256", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "--preset ffs256" in err and "synth64" in err


def test_a_resume_tidies_what_killed_runs_left_and_keeps_everything_else(tmp_path):
    data, run = _run_with_snapshot(tmp_path)  # latest.json names snapshot-000000004
    left = [
        ".snapshot-000000008.safetensors.0123456789ab.tmp",
        ".snapshot-000000008-state.safetensors.abcdef012345.tmp",
        ".latest.json.00000000aaaa.tmp",
        ".stats.jsonl.fedcba987654.tmp.jsonl",
        ".snapshot-000000008-samples.mp4.00112233aabb.tmp.mp4",
        "snapshot-000000008.safetensors",  # weights newer than latest.json, without their state
    ]
    kept = [
        "notes.txt",
        ".hidden.tmp",
        ".mine.json.0123456789ab.tmp",
        ".snapshot-000000008.safetensors.0123456789AB.tmp",
        ".snapshot-000000008.safetensors.0123456789ab.tmp.bak",
        ".notes.txt.0123456789ab.tmp.txt",
        "snapshot-000000000.safetensors",  # older than latest.json: not left by a killed snapshot
        "snapshot-000000008.safetensors.bak",
    ]
    for name in left + kept:
        (run / name).write_bytes(b"x")
    assert console(["train", "--resume", str(run), "--workers", "0", "--kimg", "0.004"]) == 0
    assert sorted(p.name for p in run.iterdir() if p.name in left + kept) == sorted(kept)
    assert (run / "snapshot-000000004.safetensors").exists()
