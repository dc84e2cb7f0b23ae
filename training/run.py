"""Starting a run: the run folder, the dataset, one process or several (torchrun), fresh or resumed."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from stylevid import checkpoint, threads
from stylevid.options import UsageError
from stylevid.training import distributed
from stylevid.training.config import TrainConfig, train_preset
from stylevid.training.run_folder import read_latest, tidy_run_folder
from stylevid.training.stop import Stopped, StopSignals, signal_name
from stylevid.training.trainer import Trainer

DEFAULT_PRESET = "synth64"
# Minutes between snapshots by time when none are given. On a CPU a tick of synth64 takes minutes and
# its snapshot a second, so a stop or a crash costs at most a few minutes. On a GPU the tick-based
# snapshots come every few minutes already (ffs256: 10 ticks of 4 kimg, about 9 minutes on an
# A100); the time-based ones bound the loss where steps are slower (a smaller GPU, several
# processes waiting on each other) without writing hundreds of megabytes every few minutes.
SNAPSHOT_MINUTES = {"cpu": 5.0, "cuda": 20.0}
ENTRY = ("-m", "stylevid")  # what torchrun starts in each process: the stylevid command (tests: a driver)


def next_run_dir(out: str | Path, name: str) -> Path:
    """out/NNNNN-name with NNNNN one past the highest existing run number."""
    out = Path(out)
    numbers = (
        [int(m[1]) for p in out.glob("*") if (m := re.match(r"(\d{5})-", p.name))] if out.exists() else []
    )
    return out / f"{max(numbers, default=-1) + 1:05d}-{name}"


def open_dataset(data: str | Path, config: TrainConfig):
    """The clip dataset for a configuration; fails before training if it does not fit the model."""
    from stylevid.data.dataset import VideoClipDataset  # noqa: PLC0415

    return VideoClipDataset(
        data,
        frames_per_clip=config.model.discriminator.frames,
        max_gap=config.max_gap,
        seed=config.seed,
        resolution=config.model.generator.resolution,
    )


def run_training(
    data: str | Path | None,
    out: str | Path = "runs",
    preset: str | None = None,
    resume: str | Path | None = None,
    gpus: int = 1,
    workers: int | None = None,
    device: str | None = None,
    run_dir: str | Path | None = None,
    progress: bool = True,
    allow_new_data: bool = False,
    minutes: float | None = None,
    snapshot_minutes: float | None = None,
    plan: threads.Plan | None = None,
    **settings,
) -> Path:
    """Train (or resume) and return the run folder; gpus > 1 outside torchrun relaunches under torchrun.

    The run folder holds a first snapshot (step 0) before training starts, so a run stopped at any
    moment resumes. It trains to its kimg, or for `minutes` of wall time; it saves a snapshot every
    `snapshot_minutes` (default SNAPSHOT_MINUTES of the device) besides the preset's ticks. SIGINT or
    SIGTERM finish the step, save a snapshot and raise Stopped (a KeyboardInterrupt) that says how to
    resume; a second SIGINT stops at once, keeping the last complete snapshot.

    `workers` None: each process starts the loader workers threads.loader_workers gives for `plan`
    (its thread plan; measured here when None).

    `settings` (lr_g, lr_d, r1_gamma, batch, kimg; None keeps) override the preset of a new run, or
    the saved configuration of a resumed one from its snapshot on (e.g. a lower learning rate after
    a NaN); a resumed run logs what changed in stats.jsonl. A resume takes its data from the run when
    `data` is None, and refuses other data unless `allow_new_data`, and a preset other than the run's.
    """
    if gpus > 1 and "WORLD_SIZE" not in os.environ:
        timing = {"minutes": minutes, "snapshot_minutes": snapshot_minutes}
        return _relaunch(
            gpus, data, out, preset, resume, workers, device, allow_new_data, progress, settings | timing
        )
    process = distributed.setup(device)
    if workers is None:
        workers = threads.loader_workers(plan or threads.plan(None), process.device)
    # From here a signal only asks to stop: setup goes on, one step runs and its snapshot is saved.
    with StopSignals() as signals:
        trainer = _prepare(data, out, preset, resume, workers, run_dir, allow_new_data, process, settings)
        if trainer is None:
            return Path(resume)
        if snapshot_minutes is None:
            snapshot_minutes = SNAPSHOT_MINUTES.get(process.device.type, SNAPSHOT_MINUTES["cuda"])
        seconds = None if minutes is None else minutes * 60
        try:
            trainer.train(progress, seconds, snapshot_minutes * 60, signals)
        except KeyboardInterrupt as exc:
            if signals.signum is None:
                raise
            raise Stopped(_stopped(trainer, signals.signum, at_once=True), signals.signum, True) from exc
    finished = trainer.nimg >= int(trainer.cfg.kimg * 1000)
    if signals.signum is not None and not finished:  # a signal in the last step changes nothing
        raise Stopped(_stopped(trainer, signals.signum), signals.signum)
    if not finished and process.is_main:
        print(
            f"stylevid train: {minutes:g} minutes are up at {trainer.nimg / 1000:g} of"
            f" {trainer.cfg.kimg:g} kimg; continue with: {resume_command(trainer.run_dir, process.world)}"
        )
    return trainer.run_dir


def _prepare(
    data, out, preset, resume, workers, run_dir, allow_new_data, process, settings
) -> Trainer | None:
    """The run's Trainer, its folder holding a snapshot to resume from; None for a finished run."""
    if resume is not None:
        run_dir = Path(resume)
        if process.is_main:
            tidy_run_folder(run_dir)
        latest = read_latest(run_dir)
        config = TrainConfig.from_dict(
            checkpoint.read_header(run_dir / latest["snapshot"])["config"]["training"]
        )
        _check_preset(preset, latest.get("preset"), config, run_dir)
        total = config.with_changes(**settings)[0].kimg
        if round(latest["kimg"] * 1000) >= int(total * 1000):
            if process.is_main:
                print(
                    f"stylevid train: {run_dir} is finished: it has trained {latest['kimg']:g} of {total:g}"
                    f" kimg. --kimg sets the new total length (not an addition): pass e.g. --kimg"
                    f" {2 * total:g} to train on to {2 * total:g} kimg"
                )
            return None
        dataset = open_dataset(data if data is not None else _recorded_data(latest, run_dir), config)
        trainer = Trainer.resume(run_dir, dataset, process, workers, allow_new_data, **settings)
    else:
        if data is None:
            raise UsageError("stylevid train needs --data (a dataset folder, .zip or folder of videos)")
        preset = preset or DEFAULT_PRESET
        config, _ = train_preset(preset).with_changes(**settings)
        dataset = open_dataset(data, config)
        run_dir = Path(run_dir) if run_dir else next_run_dir(out, preset)
        if process.is_main:
            tidy_run_folder(run_dir)
        trainer = Trainer(config, dataset, run_dir, process, workers, preset)
        trainer.snapshot()  # step 0: from now on the folder resumes
    if process.is_main:
        print(
            f"stylevid train: run folder {trainer.run_dir}, {process.world} process(es) on {process.device}"
        )
    return trainer


def resume_command(run_dir: Path, world: int = 1) -> str:
    """The command line that continues a run."""
    gpus = f" --gpus {world}" if world > 1 else ""
    return f"stylevid train --resume {shlex.quote(str(run_dir))}{gpus}"


def _stopped(trainer: Trainer, signum: int, at_once: bool = False) -> str:
    """What rank 0 says when a signal stopped the run (the other processes say nothing)."""
    if not trainer.process.is_main:
        return ""
    run_dir, name = trainer.run_dir, signal_name(signum)
    if at_once:
        latest = read_latest(run_dir)
        saved = (
            f"stopped at once by a second {name}; {run_dir} keeps its last complete snapshot,"
            f" {latest['snapshot']} ({latest['kimg']:g} kimg)"
        )
    else:
        saved = f"stopped by {name} at {trainer.nimg / 1000:g} kimg, snapshot saved in {run_dir}"
    command = resume_command(run_dir, trainer.process.world)
    return f"stylevid train: {saved}; resume with: {command} (exit status {128 + signum})"


def _check_preset(preset: str | None, recorded: str | None, config: TrainConfig, run_dir: Path) -> None:
    """Refuse a --preset other than the run's (older runs record none: their model is compared)."""
    if preset is None or preset == recorded:
        return
    if recorded is None and train_preset(preset).model.to_dict() == config.model.to_dict():
        return
    runs = f"the run's preset {recorded}" if recorded else "the model of the run"
    raise UsageError(
        f"--preset {preset} differs from {runs} ({run_dir}): a resumed run keeps its model and"
        f" settings; drop --preset, or start a new run with --preset {preset}"
    )


def _recorded_data(latest: dict, run_dir: Path) -> str:
    """The dataset path the run's latest snapshot recorded."""
    if not latest.get("dataset"):
        raise UsageError(f"{run_dir} does not record its dataset (an older run): pass --data")
    return latest["dataset"]["path"]


def _relaunch(gpus, data, out, preset, resume, workers, device, allow_new_data, progress, settings) -> Path:
    # Decide the run folder here so that every process writes to (rank 0) the same one.
    run_dir = Path(resume) if resume else next_run_dir(out, preset or DEFAULT_PRESET)
    command = [sys.executable, "-m", "stylevid.training.torchrun", "--standalone", f"--nproc_per_node={gpus}"]
    command += [*ENTRY, "train"]
    command += ["--resume", str(resume)] if resume else ["--run-dir", str(run_dir)]
    command += ["--allow-new-data"] if allow_new_data else []
    command += [] if progress else ["--quiet"]
    options = {
        "--workers": workers,  # None: each process chooses its own
        "--data": data,
        "--preset": preset,
        **{f"--{k.replace('_', '-')}": v for k, v in settings.items()},
        "--device": device,
    }
    for flag, value in options.items():
        if value is not None:
            command += [flag, str(value)]
    # The terminal's Ctrl-C reaches this process and torchrun (the training processes run in sessions
    # of their own: torchrun passes the signal on, training/torchrun.py); this one waits for them
    # instead of killing them. A SIGTERM sent to this one alone is passed on.
    child = subprocess.Popen(command)
    received = []

    def forward(signum, frame):
        received.append(signum)
        if signum == signal.SIGTERM:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        raise Stopped("", received[0])  # rank 0 has said how to resume
    if code:
        raise subprocess.CalledProcessError(code, command)
    return run_dir
