"""The ablation of the disentanglement recipe: each variant trained for the same CPU budget, one table.

    python benchmarks/disentangle.py [--minutes 5] [--variants full,no_keep,...] [--out build/ablation]

Every variant starts from the synth64 preset (the `make demo` recipe) with one part taken away:
a pair term (keep / move / contrast), the teacher (no pair terms at all), one prior of the face
layer (symmetric canonical layers, binary silhouettes, learned depth, the drawn face, the value prior
on its pose and light), or the face
layer itself (`old_priors`: the earlier 2-D priors, shading and pose_warp, in its place). Each
trains for --minutes of wall time on the demo's synthetic dataset and is then judged by the
evaluation probes (never the teacher): leakage (normalised) with its bootstrap 95% interval,
control (mean diagonal effect, and per factor); by frame_fd16 and frame_fd_vgg (VGG-16 features
of the frames at 64²); and by the share of generated frames in which MTCNN (which no synth64 loss
reads) finds a face, beside the data's. The table is printed as Markdown and written with the raw
results as JSON.
Use a quiet machine: the variants share the budget in wall time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import traceback
from pathlib import Path

import torch

from stylevid.api import VideoGenerator
from stylevid.data.synthetic import synthesize
from stylevid.metrics.faces_found import face_share
from stylevid.metrics.leakage import ProbeReadout
from stylevid.training.config import TrainConfig, train_preset
from stylevid.training.demo import FACE_FRAMES, RealReference, evaluate, real_frames
from stylevid.training.distributed import ProcessGroup
from stylevid.training.run import open_dataset
from stylevid.training.trainer import Trainer


def _without(**changes):
    def change(cfg: TrainConfig) -> TrainConfig:
        return dataclasses.replace(cfg, disentangle=dataclasses.replace(cfg.disentangle, **changes))

    return change


def _generator(**changes):
    def change(cfg: TrainConfig) -> TrainConfig:
        generator = dataclasses.replace(cfg.model.generator, **changes)
        return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, generator=generator))

    return change


def _loss(**changes):
    def change(cfg: TrainConfig) -> TrainConfig:
        return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, **changes))

    return change


VARIANTS = {
    "full": lambda cfg: cfg,
    "no_keep": _without(keep=0.0),
    "no_move": _without(move=0.0),
    "no_contrast": _without(contrast=0.0),
    # The imitation term reads frames with the teacher: without a teacher it is off too.
    "no_teacher": lambda cfg: _without(teacher="none")(_loss(imitate=0.0)(cfg)),
    "no_symmetry": _generator(symmetric=False),
    "soft_alpha": _generator(binary_alpha=False),
    "one_dome": _generator(learned_depth=False),
    "no_template": _generator(face_template=False),
    "no_value_prior": _loss(value_prior=0.0),
    "no_imitate": _loss(imitate=0.0),
    "pose_marginal": _generator(pose_marginal=True),
    "no_centred_depth": _generator(centred_depth=False),
    # The renderer's highlight on the skin and its neck and shoulders as the body's shape (both off in
    # synth64: trained 30 kimg together they raised the leakage, docs/results.md).
    "renderer_surfaces": _generator(specular=True, body_shape=True),
    # The value prior, the imitation and the centred depth are the face layer's: the 2-D priors have no
    # physical values to hold or show, and no depth.
    "old_priors": lambda cfg: _generator(face3d=False, shading=True, pose_warp=True, centred_depth=False)(
        _loss(value_prior=0.0, imitate=0.0)(cfg)
    ),
}


def run_variant(name: str, data: Path, minutes: float, out: Path, real, readout, device: str) -> dict:
    """Train variant `name` for `minutes` on `device` and evaluate it; returns its row."""
    cfg = VARIANTS[name](train_preset("synth64"))
    cfg.kimg, cfg.tick_kimg, cfg.snapshot_ticks = 10_000.0, 0.2, 10_000
    process = ProcessGroup(device=torch.device(device))
    trainer = Trainer(cfg, open_dataset(data, cfg), out / name, process, workers=1)
    trainer.train(progress=False, seconds=minutes * 60)
    gen = VideoGenerator(trainer.G_ema, cfg.model)
    scores, _ = evaluate(gen, real, readout, faces=True)
    return {"variant": name, "kimg": trainer.nimg / 1000, **scores}


def run_all(names: list[str], run_one, record) -> list[dict]:
    """run_one(name) for each name, record(rows so far) after each; a variant that raises is recorded
    with its error and the variants after it still run (one crash must not lose the rest of the list)."""
    rows = []
    for name in names:
        try:
            row = run_one(name)
        except Exception as error:
            traceback.print_exc()
            row = {"variant": name, "error": f"{type(error).__name__}: {error}"}
        rows.append(row)
        record(rows)
    return rows


def table(rows: list[dict], data_faces: float) -> str:
    """The Markdown table of the rows; data_faces: the share of the data's frames with a face found."""
    lines = [
        "| variant | kimg | leakage [95% CI] | control | id, pose, light, bg | frame_fd16 | frame_fd_vgg |"
        f" MTCNN faces (data {data_faces:.0%}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['variant']} | failed: {r['error']} | | | | | | |")
            continue
        low, high = r["interval"]["leakage"]
        per = " / ".join(f"{v:.2f}" for v in r["control_per_factor"].values())
        lines.append(
            f"| {r['variant']} | {r['kimg']:.1f} | {r['leakage']:.2f} [{low:.2f}, {high:.2f}] |"
            f" {r['control']:.2f} | {per} | {r['frame_fd16']:.1f} | {r['frame_fd_vgg']:.3f} |"
            f" {r['faces_found']:.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training wall time per variant")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--data", type=Path, default=Path("demo/synthetic-64.zip"))
    parser.add_argument("--out", type=Path, default=Path("build/ablation"))
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of torch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)
    data = synthesize(args.data, videos=192, frames=32, resolution=64, seed=0, workers=2)
    readout = ProbeReadout()
    dataset = open_dataset(data, train_preset("synth64"))
    real = RealReference.of(real_frames(dataset, 1024))
    data_faces = face_share(real_frames(dataset, FACE_FRAMES, seed=1))
    baseline = real.real_vs_real()
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)

    def record(rows: list[dict]) -> None:
        print(table(rows[-1:], data_faces).splitlines()[-1], flush=True)
        result = {
            "minutes": args.minutes,
            "data_faces_found": data_faces,
            "real_vs_real": baseline,
            "rows": rows,
        }
        (args.out / "ablation.json").write_text(json.dumps(result, indent=2))

    rows = run_all(
        names,
        lambda name: run_variant(name, data, args.minutes, args.out, real, readout, args.device),
        record,
    )
    spent = (time.monotonic() - started) / 60
    print(f"\n{args.minutes:g} minutes per variant on {args.device}, {spent:.0f} minutes in all\n")
    print(table(rows, data_faces))
    fd16, vgg = baseline["frame_fd16"], baseline["frame_fd_vgg"]
    print(f"\nreal-vs-real: frame_fd16 {fd16:.1f}, frame_fd_vgg {vgg:.3f}")
    failed = [r["variant"] for r in rows if "error" in r]
    if failed:
        errors = args.out / "ablation.json"
        sys.exit(f"variants that failed (their errors above and in {errors}): {', '.join(failed)}")


if __name__ == "__main__":
    main()
