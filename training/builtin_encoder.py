"""Make a built-in encoder: an encoder run's snapshot, judged and written into the package by its model.

    python -m stylevid.training.builtin_encoder RUN[/encoder-NNNNNNN.safetensors] [--data DATA]

writes ``stylevid/builtin/synth64-encoder.safetensors`` (the encoder, its configuration naming the
built-in generator by hash, the scores in its metadata) and ``synth64-encoder.json``: the sample
metrics (identity NMSE, R_K, retrieval, pose and lighting R² from identity) on people of another
seed than training's, and reconstruction (LPIPS-VGG, identity similarity through FaceNet CASIA,
TL-ID, TG-ID) of videos of a synthetic dataset the encoder never saw (seed 7 by default).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from stylevid import builtin
from stylevid.api import load
from stylevid.atomic import write_atomically
from stylevid.encoder import load_encoder
from stylevid.encoder.api import save_encoder
from stylevid.training.run_folder import read_latest

EVAL_DATA = Path("build/synth-eval.zip")
EVAL_SEED = 7  # the held-out synthetic videos: the training data is seed 0's


def held_out_clips(data: Path, resolution: int, clips: int = 32, frames: int = 16) -> torch.Tensor:
    """[M, T, 3, R, R]: the first frames of `clips` videos of a synthetic dataset (made when missing)."""
    from stylevid.data.dataset import VideoClipDataset  # noqa: PLC0415

    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        command = ["synth", "--out", str(data), "--videos", str(clips), "--frames", str(frames)]
        command += ["--seed", str(EVAL_SEED), "--resolution", str(resolution)]
        subprocess.run([sys.executable, "-m", "stylevid", *command], check=True)
    dataset = VideoClipDataset(
        data, frames_per_clip=frames, max_gap=frames - 1, seed=0, resolution=resolution
    )
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(clips, len(dataset))).round().astype(int))
    return torch.stack([dataset[int(i)]["frames"] for i in picks])


def judge_encoder(encoder, generator, data: Path, people: int = 1000) -> dict:
    """The scores of the module doc."""
    from stylevid.metrics.face_embedders import load_face_embedder  # noqa: PLC0415
    from stylevid.metrics.inversion import reconstruction, sample_inversion  # noqa: PLC0415
    from stylevid.metrics.lpips import load_lpips  # noqa: PLC0415

    samples = sample_inversion(encoder, generator, people, seed=1)
    clips = held_out_clips(data, generator.resolution)
    embedder = load_face_embedder(weights="facenet-casia-webface")
    real = reconstruction(encoder, generator, clips, load_lpips("vgg"), embedder)
    return {"samples": samples, "held_out_videos": {"data": str(data), **real}}


def export_builtin_encoder(
    snapshot: str | Path, data: Path = EVAL_DATA, name: str = "synth64", folder=builtin.FOLDER, people=1000
) -> dict:
    """Judge an encoder of built-in model `name` and write it into the package as that model's encoder."""
    snapshot = Path(snapshot)
    if snapshot.is_dir():
        snapshot = snapshot / read_latest(snapshot, progress="")["snapshot"]
    generator = load(f"{builtin.PREFIX}{name}")
    encoder = load_encoder(snapshot)
    encoder.check_generator(generator)
    scores = judge_encoder(encoder, generator, data, people)
    info = {"snapshot": snapshot.name, "step": encoder.metadata.get("step"), **scores}
    out = Path(folder) / builtin.ENCODERS[name]
    metadata = {"builtin": name, "training": encoder.metadata.get("training"), **info}
    save_encoder(out, encoder.encoder, metadata)
    write_atomically(out.with_suffix(".json"), (json.dumps(info, indent=2) + "\n").encode())
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshot", type=Path, help="an encoder snapshot (.safetensors), or its run folder")
    parser.add_argument("--data", type=Path, default=EVAL_DATA, help="held-out videos (made if missing)")
    parser.add_argument("--name", default="synth64", choices=sorted(builtin.ENCODERS))
    parser.add_argument("--people", type=int, default=1000)
    args = parser.parse_args()
    print(
        json.dumps(export_builtin_encoder(args.snapshot, args.data, args.name, people=args.people), indent=2)
    )


if __name__ == "__main__":
    main()
