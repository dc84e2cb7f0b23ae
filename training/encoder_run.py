"""`stylevid train-encoder`: a run folder for the encoder of a generator, fresh or resumed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stylevid import options
from stylevid.checkpoint import read_header
from stylevid.options import UsageError
from stylevid.training.encoder_config import EncoderTrainConfig
from stylevid.training.encoder_trainer import EncoderTrainer
from stylevid.training.run import next_run_dir
from stylevid.training.run_folder import read_latest, tidy_run_folder

DEFAULT_NETWORK = "builtin:synth64"


def open_frames(data, config: EncoderTrainConfig, resolution: int):
    """The dataset's clips of `references` frames (the real frames the encoder also learns from)."""
    from stylevid.data.dataset import VideoClipDataset  # noqa: PLC0415

    return VideoClipDataset(
        data, frames_per_clip=config.references, max_gap=16, seed=config.seed, resolution=resolution
    )


def run_encoder_training(
    network: str | None = None,
    data: str | Path | None = None,
    out: str | Path = "runs",
    resume: str | Path | None = None,
    steps: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    config: EncoderTrainConfig | None = None,
    seconds: float | None = None,
) -> Path:
    """Train an encoder for `network` (on its samples, and on `data`'s frames if given); the run folder.

    With `resume`, network and data default to the run's own (its run.json)."""
    import stylevid  # noqa: PLC0415

    recorded = {}
    if resume is not None:
        run_dir = Path(resume)
        tidy_run_folder(run_dir, progress="")
        recorded = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    network = network or recorded.get("network") or DEFAULT_NETWORK
    generator = stylevid.load(network, device=device)
    resolution = generator.resolution
    if resume is not None:
        data = data if data is not None else recorded.get("data")
        latest = read_latest(run_dir, progress="")
        saved = EncoderTrainConfig.from_dict(
            read_header(run_dir / latest["snapshot"])["metadata"]["training"]
        )
        dataset = None if data is None else open_frames(data, saved, resolution)
        trainer = EncoderTrainer.resume(run_dir, generator, dataset, device, network, steps)
        if trainer.step_index >= trainer.cfg.steps:
            print(
                f"stylevid train-encoder: {run_dir} is finished at step {latest['step']};"
                " --steps sets a new total"
            )
            return run_dir
    else:
        cfg = config or EncoderTrainConfig()
        if steps is not None:
            cfg.steps = steps
        run_dir = next_run_dir(out, "encoder")
        dataset = None if data is None else open_frames(data, cfg, resolution)
        trainer = EncoderTrainer(cfg, generator, run_dir, dataset, device, network)
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {"network": str(network), "data": None if data is None else str(data)}
        (run_dir / "run.json").write_text(json.dumps(record, indent=2))
    print(f"stylevid train-encoder: run folder {run_dir}, on {trainer.device}")
    trainer.train(progress=progress, seconds=seconds)
    return run_dir


def _train_encoder(args: argparse.Namespace) -> int:
    cfg = EncoderTrainConfig(teacher=args.teacher, lr=args.lr, seed=args.seed)
    if args.resume is None and args.network is None:
        raise UsageError("stylevid train-encoder needs --network (a checkpoint or builtin:synth64)")
    seconds = None if args.minutes is None else args.minutes * 60
    run_encoder_training(
        args.network,
        args.data,
        args.out,
        args.resume,
        args.steps,
        args.device,
        config=cfg,
        seconds=seconds,
        progress=options.progress(args),
    )
    return 0


def register_cli(jobs) -> None:
    p = jobs.add_parser(
        "train-encoder", help="train the encoder of a generator on its own samples (and a dataset's frames)"
    )
    p.add_argument("--network", default=None, help="the generator checkpoint (or builtin:synth64)")
    p.add_argument("--data", default=None, help="a dataset whose frames the encoder also learns to rebuild")
    p.add_argument("--out", default="runs", help="parent of the run folders (default runs/)")
    p.add_argument("--resume", default=None, help="an encoder run folder to continue")
    p.add_argument(
        "--steps", type=options.positive_int, default=None, help="total training steps (default 2000)"
    )
    p.add_argument(
        "--teacher",
        default="synthetic",
        choices=["synthetic", "faces", "none"],
        help="identity reader of the real-frame term (synthetic: the built-in data; faces: real faces)",
    )
    p.add_argument(
        "--minutes",
        type=options.float_in(0, 1e6, open_low=True),
        default=None,
        help="stop after this much time (a snapshot is written; --resume continues)",
    )
    p.add_argument("--lr", type=options.learning_rate, default=1e-3)
    p.add_argument("--seed", type=options.non_negative_int, default=0)
    p.add_argument("--device", type=options.device, default="cpu", help="cuda or cpu")
    p.set_defaults(run=_train_encoder)
