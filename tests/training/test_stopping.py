"""`stylevid train` stopped at any moment: SIGINT saves and says how to resume, bit-exactly; time limits."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import tiny_training

from stylevid.checkpoint import load_checkpoint
from stylevid.cli import console
from stylevid.data.writer import DatasetWriter
from stylevid.training import config as train_config
from stylevid.training import run
from stylevid.training.run_folder import read_latest

TESTS = str(Path(__file__).parents[1])


# 12 steps of 4 clips, a tick every 4 steps, a snapshot every 2nd tick and at the first.
TINY = {"kimg": 0.048, "tick_kimg": 0.016, "snapshot_ticks": 2}


def _tiny():
    return tiny_training(**TINY)


# `stylevid train` with the tiny preset as the default; with HOLD set, every snapshot after the first
# pauses inside the rename of its weights file, saying so, for a signal to land there.
DRIVER = """
import os, sys, time
sys.path.insert(0, {tests!r})
from tiny import tiny_training
from stylevid.training import config, run
from stylevid.cli import console

config.PRESETS["tiny"] = lambda: tiny_training(**{tiny!r})
run.DEFAULT_PRESET = "tiny"
real_replace = os.replace

def replaced(src, dst):
    name = os.path.basename(str(dst))
    if os.environ.get("HOLD") and name.startswith("snapshot-") and name != "snapshot-000000000.safetensors":
        print("inside", name, flush=True)
        time.sleep(1.0)
    return real_replace(src, dst)

os.replace = replaced
sys.exit(console(sys.argv[1:]))
"""


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(train_config.PRESETS, "tiny", _tiny)
    monkeypatch.setattr(run, "DEFAULT_PRESET", "tiny")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "ds"
    with DatasetWriter(path, 25.0, 16) as writer:
        for i in range(4):
            writer.add_video(f"v{i}", np.full((12, 16, 16, 3), 40 * i, dtype=np.uint8))
    return path


def _train(data, out, *options, hold=False):
    """A `stylevid train` process in a session of its own (a signal to the group reaches its workers)."""
    command = [sys.executable, "-c", DRIVER.format(tests=TESTS, tiny=TINY), "train", "--data", str(data)]
    env = {**os.environ, "HOLD": "1" if hold else "", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*command, "--out", str(out), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _wait_for(proc, start: str) -> str:
    for line in proc.stdout:
        if line.startswith(start):
            return line
    raise AssertionError(f"no line starting {start!r}; stderr: {proc.stderr.read()}")


def _final(run_dir):
    latest = read_latest(run_dir)
    weights = load_checkpoint(run_dir / latest["snapshot"]).tensors
    state = load_checkpoint(run_dir / latest["state"]).tensors
    return latest, {**weights, **{f"state.{k}": v for k, v in state.items()}}


def _flat(tensors, prefix=""):
    for key, value in tensors.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _assert_same(a, b):
    a, b = dict(_flat(a)), dict(_flat(b))
    assert a.keys() == b.keys() and len(a) > 50
    differ = [key for key in a if not torch.equal(a[key], b[key])]
    assert not differ, f"differ after the resume: {differ[:5]}"


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """The uninterrupted run's last snapshot."""
    out = tmp_path_factory.mktemp("straight")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(train_config.PRESETS, "tiny", _tiny)
        patch.setattr(run, "DEFAULT_PRESET", "tiny")
        assert console(["train", "--data", str(data), "--out", str(out), "--workers", "0"]) == 0
    latest, tensors = _final(next(out.iterdir()))
    assert latest["nimg"] == 48
    return tensors


MOMENTS = {
    "at the first line": (0.0, False, 0),
    "at random 1": (random.Random(1).uniform(0.0, 3.0), False, 1),
    "at random 2": (random.Random(2).uniform(0.0, 3.0), False, 1),
    "inside a snapshot write": (None, True, 0),
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_sigint_at_any_moment_resumes_to_the_uninterrupted_weights(data, tmp_path, moment, straight):
    delay, hold, workers = MOMENTS[moment]
    proc = _train(data, tmp_path, "--workers", str(workers), hold=hold)
    line = _wait_for(proc, "stylevid train: run folder")
    run_dir = Path(line.split("run folder ")[1].split(",")[0])
    assert (run_dir / "latest.json").exists()  # the folder resumes from the first line that names it
    if hold:
        _wait_for(proc, "inside")
    else:
        time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group, loader workers too
    out, err = proc.communicate(timeout=120)
    latest = read_latest(run_dir)
    if latest["nimg"] == 48:  # the run ended before the signal came, or in its last step
        assert proc.returncode in (0, 130, -signal.SIGINT), err
    else:
        assert proc.returncode == 130, err
        last = err.strip().splitlines()[-1]
        assert f"resume with: stylevid train --resume {run_dir} (exit status 130)" in last, err
        assert f"stopped by SIGINT at {latest['kimg']:g} kimg" in last
        assert 0 < latest["nimg"] < 48
        assert console(["train", "--resume", str(run_dir), "--workers", "0"]) == 0
    _assert_same(straight, _final(run_dir)[1])


def test_a_run_killed_before_its_first_tick_resumes(data, tmp_path, straight):
    proc = _train(data, tmp_path, "--workers", "0")
    line = _wait_for(proc, "stylevid train: run folder")
    proc.kill()
    proc.wait()
    run_dir = Path(line.split("run folder ")[1].split(",")[0])
    assert console(["train", "--resume", str(run_dir), "--workers", "0"]) == 0
    _assert_same(straight, _final(run_dir)[1])


def test_a_second_sigint_stops_at_once_keeping_the_last_complete_snapshot(data, tmp_path):
    proc = _train(data, tmp_path, "--workers", "0", hold=True)
    line = _wait_for(proc, "stylevid train: run folder")
    run_dir = Path(line.split("run folder ")[1].split(",")[0])
    held = _wait_for(proc, "inside").split()[1]  # the first tick's snapshot, inside its rename
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped at once by a second SIGINT" in err and "Traceback (most recent" not in err
    assert f"resume with: stylevid train --resume {run_dir}" in err
    latest = read_latest(run_dir)
    assert latest["snapshot"] == "snapshot-000000000.safetensors" != held
    load_checkpoint(run_dir / latest["snapshot"])
    load_checkpoint(run_dir / latest["state"])
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temp file left


def test_minutes_bound_the_run_and_it_resumes_exactly(data, tmp_path, tiny_preset, straight, capsys):
    argv = ["train", "--data", str(data), "--out", str(tmp_path), "--workers", "0", "--minutes", "1e-6"]
    assert console(argv) == 0
    run_dir = next(tmp_path.iterdir())
    latest = read_latest(run_dir)
    assert latest["step"] == 1  # the time was up after the first step, and the run saved there
    assert f"continue with: stylevid train --resume {run_dir}" in capsys.readouterr().out
    assert console(["train", "--resume", str(run_dir), "--workers", "0"]) == 0
    _assert_same(straight, _final(run_dir)[1])


def test_snapshot_minutes_saves_by_time_between_ticks(data, tmp_path, tiny_preset):
    argv = ["train", "--data", str(data), "--out", str(tmp_path), "--workers", "0", "--kimg", "0.016"]
    assert console([*argv, "--snapshot-minutes", "1e-6"]) == 0
    run_dir = next(tmp_path.iterdir())
    saved = sorted(p.name for p in run_dir.glob("snapshot-?????????.safetensors"))
    # One step each: past 1e-6 minutes since the last snapshot, every step saves, not only ticks.
    assert saved == [f"snapshot-{n:09d}.safetensors" for n in (0, 4, 8, 12, 16)]


def test_by_default_snapshots_come_at_the_first_tick_and_every_snapshot_ticks(data, tmp_path, tiny_preset):
    assert console(["train", "--data", str(data), "--out", str(tmp_path), "--workers", "0"]) == 0
    run_dir = next(tmp_path.iterdir())
    saved = sorted(p.name for p in run_dir.glob("snapshot-?????????.safetensors"))
    assert saved == [f"snapshot-{n:09d}.safetensors" for n in (0, 16, 32, 48)]


@pytest.mark.parametrize(
    ("latest", "message"),
    [
        ({"state": "s", "step": 1, "kimg": 0.1}, "the field 'snapshot' is missing"),
        ({"snapshot": "a", "state": "s", "step": "1", "kimg": 0.1}, "the field 'step' is '1', expected int"),
        ({"snapshot": "a", "state": "s", "step": 1, "kimg": True}, "'kimg' is True, expected int or float"),
        ({"snapshot": "a", "state": "s", "step": 1, "kimg": 1, "dataset": {}}, "'dataset.path' is missing"),
        ({"snapshot": "../a", "state": "s", "step": 1, "kimg": 1}, "must name a file in the run folder"),
        ([1, 2], "expected a JSON object, found list"),
    ],
)
def test_a_latest_json_of_the_wrong_shape_is_one_message(tmp_path, capsys, latest, message):
    (tmp_path / "latest.json").write_text(json.dumps(latest))
    assert console(["train", "--resume", str(tmp_path), "--workers", "0"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent" not in err and str(tmp_path / "latest.json") in err and message in err


def test_a_stats_record_of_the_wrong_shape_is_one_message_and_a_cut_last_line_is_dropped(
    data, tmp_path, tiny_preset, capsys
):
    argv = ["train", "--data", str(data), "--out", str(tmp_path), "--workers", "0", "--kimg", "0.016"]
    assert console(argv) == 0
    run_dir = next(tmp_path.iterdir())
    stats = run_dir / "stats.jsonl"
    good = stats.read_text()
    resume = ["train", "--resume", str(run_dir), "--workers", "0", "--kimg", "0.02"]
    stats.write_text(good + '{"tick": "3"}\n')
    assert console(resume) == 1
    err = capsys.readouterr().err
    assert (
        f"{stats}, line {len(good.splitlines()) + 1}: the field 'tick' is '3', expected int" in err
        and "Traceback (most recent" not in err
    )
    stats.write_text(good + '{"tick": 3, "st')  # killed while appending
    assert console(resume) == 0
    assert all(json.loads(line) for line in stats.read_text().splitlines())


# The driver as a script torchrun starts in each process (run.ENTRY), printing where each one stopped.
RANKS_DRIVER = """
import os, sys
sys.path.insert(0, {tests!r})
from tiny import tiny_training
from stylevid.training import config, run, trainer
from stylevid.cli import console

config.PRESETS["tiny"] = lambda: tiny_training(**{tiny!r})
run.DEFAULT_PRESET = "tiny"
run.ENTRY = (__file__,)
train = trainer.Trainer.train

def reported(self, *args, **kwargs):
    try:
        return train(self, *args, **kwargs)
    finally:
        print(f"rank {{self.process.rank}} stopped at step {{self.step_index}}", flush=True)

trainer.Trainer.train = reported
sys.exit(console(sys.argv[1:]))
"""


def _train_ranks(data, run_dir, *options):
    """`stylevid train --gpus 2` (gloo on the CPU) in a session of its own, as from a terminal."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    driver = run_dir.parent / "driver.py"
    driver.write_text(RANKS_DRIVER.format(tests=TESTS, tiny=TINY))
    command = [sys.executable, str(driver), "train", "--gpus", "2", "--device", "cpu", "--workers", "0"]
    command += (
        ["--resume", str(run_dir)]
        if run_dir.exists()
        else ["--data", str(data), "--out", str(run_dir.parent)]
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*command, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def test_sigint_stops_two_processes_at_one_step_with_one_snapshot_and_resumes_exactly(data, tmp_path):
    straight = _train_ranks(data, tmp_path / "straight" / "00000-tiny")
    out, err = straight.communicate(timeout=120)
    assert straight.returncode == 0, err
    expected = _final(tmp_path / "straight" / "00000-tiny")[1]

    run_dir = tmp_path / "stopped" / "00000-tiny"
    proc = _train_ranks(data, run_dir)
    _wait_for(proc, "stylevid train: run folder")
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the launcher and torchrun
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    stops = sorted(line for line in out.splitlines() if line.startswith("rank "))
    latest = read_latest(run_dir)
    step = latest["step"]
    assert stops == [f"rank 0 stopped at step {step}", f"rank 1 stopped at step {step}"], out + err
    assert 0 < latest["nimg"] < 48
    assert f"resume with: stylevid train --resume {run_dir} --gpus 2 (exit status 130)" in err
    assert "Traceback (most recent" not in err, err
    resumed = _train_ranks(data, run_dir)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    _assert_same(expected, _final(run_dir)[1])
