"""Starting a run: the run folder, the dataset, one process or several (torchrun), fresh or resumed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from stylevid.training import distributed
from stylevid.training.config import TrainConfig, train_preset
from stylevid.training.trainer import Trainer


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
    data: str | Path,
    out: str | Path = "runs",
    preset: str = "synth64",
    resume: str | Path | None = None,
    gpus: int = 1,
    workers: int = 2,
    device: str | None = None,
    run_dir: str | Path | None = None,
    progress: bool = True,
    **settings,
) -> Path:
    """Train (or resume) and return the run folder; gpus > 1 outside torchrun relaunches under torchrun.

    `settings` (lr_g, lr_d, r1_gamma, batch, kimg; None keeps) override the preset of a new run, or
    the saved configuration of a resumed one from its snapshot on (e.g. a lower learning rate after
    a NaN); a resumed run logs what changed in stats.jsonl.
    """
    if gpus > 1 and "WORLD_SIZE" not in os.environ:
        return _relaunch(gpus, data, out, preset, resume, workers, device, settings)
    process = distributed.setup(device)
    if resume is not None:
        trainer = Trainer.resume(resume, None, process, workers, **settings)
        trainer.dataset = open_dataset(data, trainer.cfg)
    else:
        config, _ = train_preset(preset).with_changes(**settings)
        dataset = open_dataset(data, config)
        run_dir = Path(run_dir) if run_dir else next_run_dir(out, preset)
        trainer = Trainer(config, dataset, run_dir, process, workers)
    if process.is_main:
        print(
            f"stylevid train: run folder {trainer.run_dir}, {process.world} process(es) on {process.device}"
        )
    trainer.train(progress=progress)
    return trainer.run_dir


def _relaunch(gpus, data, out, preset, resume, workers, device, settings) -> Path:
    # Decide the run folder here so that every process writes to (rank 0) the same one.
    run_dir = Path(resume) if resume else next_run_dir(out, preset)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"]
    command += ["-m", "stylevid", "train", "--data", str(data), "--preset", preset, "--workers", str(workers)]
    command += ["--resume", str(resume)] if resume else ["--run-dir", str(run_dir)]
    options = {**{f"--{k.replace('_', '-')}": v for k, v in settings.items()}, "--device": device}
    for flag, value in options.items():
        if value is not None:
            command += [flag, str(value)]
    subprocess.run(command, check=True)
    return run_dir
