"""Make a built-in model: a training snapshot's EMA generator, judged and written into the package.

    python -m stylevid.training.builtin RUN[/snapshot-NNNNNNNNN.safetensors] [--data demo/synthetic-64.zip]

writes ``stylevid/builtin/synth64.safetensors`` (G_ema, the model and training configuration, and
the scores in its metadata) and ``synth64.json`` beside it (the scores: frame_fd16 and
frame_fd_vgg against the data, the leakage read by the evaluation probes with its bootstrap
interval, control per factor, the snapshot's kimg). `make builtin` trains the snapshot first (the
synth64 recipe, 30 kimg).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stylevid import builtin, checkpoint
from stylevid.api import load
from stylevid.atomic import write_atomically
from stylevid.metrics.leakage import ProbeReadout
from stylevid.training.config import TrainConfig
from stylevid.training.demo import RealReference, evaluate, real_frames
from stylevid.training.run import open_dataset
from stylevid.training.run_folder import read_latest


def export_builtin(
    snapshot: str | Path, data: str | Path, name: str = "synth64", folder: str | Path = builtin.FOLDER
) -> dict:
    """Judge the snapshot's G_ema (of a run folder: its latest) on `data`; write it as built-in `name`."""
    snapshot = Path(snapshot)
    if snapshot.is_dir():
        snapshot = snapshot / read_latest(snapshot)["snapshot"]
    ckpt = checkpoint.load_checkpoint(snapshot)
    training = checkpoint.read_config(ckpt, "training", TrainConfig.from_dict)
    gen = load(snapshot)
    if gen.generator.pose_marginal:
        # As the trainer does before each snapshot (snapshots written before it did not).
        gen.generator.calibrate_pose(training.video_frames)
    real = RealReference.of(real_frames(open_dataset(data, training), 1024))
    scores, result = evaluate(gen, real, ProbeReadout())
    baseline = real.real_vs_real()
    info = {
        "snapshot": snapshot.name,
        "kimg": ckpt.metadata.get("kimg"),
        "data": str(data),
        "frame_fd16": scores.pop("frame_fd16"),
        "real_vs_real_fd16": baseline["frame_fd16"],
        "frame_fd_vgg": scores.pop("frame_fd_vgg", None),  # None below VGG's 32²
        "real_vs_real_fd_vgg": baseline.get("frame_fd_vgg"),
        "leakage": {**scores, "floor": result["floor"], "share": result["share"], "effect": result["effect"]},
    }
    out = Path(folder) / builtin.MODELS[name]
    config = {"model": ckpt.config["model"], "training": ckpt.config["training"]}
    checkpoint.save_checkpoint(out, {"G_ema": gen.generator}, config, {"builtin": name, **info})
    write_atomically(out.with_suffix(".json"), (json.dumps(info, indent=2) + "\n").encode())
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshot", type=Path, help="a training snapshot (.safetensors), or a run folder")
    parser.add_argument("--data", type=Path, default=Path("demo/synthetic-64.zip"))
    parser.add_argument("--name", default="synth64", choices=sorted(builtin.MODELS))
    args = parser.parse_args()
    print(json.dumps(export_builtin(args.snapshot, args.data, args.name), indent=2))


if __name__ == "__main__":
    main()
