"""Inversion speed and quality on the CPU: the encoder alone, with refinement, and optimisation.

    python benchmarks/encoder.py [--network builtin:synth64] [--encoder builtin:synth64]
                                 [--data build/synth-eval.zip] [--images 16] [--ceiling 400]

Each of `--images` frames of a synthetic dataset the generator never saw (made with `stylevid synth
--seed 7` when missing) is inverted alone (K = 1), side by side in one run: the first estimate plus
one pass, the default passes, the passes then 50 optimisation steps, and the passes then `--ceiling`
steps (the optimisation ceiling). Reported: seconds per image and LPIPS-VGG of the reconstruction
(the optimisation minimises LPIPS-AlexNet + L2, as `stylevid invert --optimize` does).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

import stylevid
from stylevid.data.dataset import VideoClipDataset
from stylevid.metrics.lpips import load_lpips

EVAL_DATA = Path("build/synth-eval.zip")


def _eval_frames(data: Path, count: int, resolution: int) -> torch.Tensor:
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "stylevid",
                "synth",
                "--out",
                str(data),
                "--videos",
                "32",
                "--frames",
                "16",
            ]
            + ["--seed", "7", "--resolution", str(resolution)],
            check=True,
        )
    dataset = VideoClipDataset(data, frames_per_clip=1, max_gap=1, seed=0, resolution=resolution)
    picks = torch.linspace(0, len(dataset) - 1, count).round().long().unique()
    return torch.stack([dataset[int(i)]["frames"][0] for i in picks])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="builtin:synth64")
    parser.add_argument("--encoder", default="builtin:synth64")
    parser.add_argument("--data", type=Path, default=EVAL_DATA)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--ceiling", type=int, default=400, help="optimisation steps of the ceiling")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = stylevid.load(args.network)
    enc = stylevid.load_encoder(args.encoder)
    frames = _eval_frames(args.data, args.images, gen.resolution)
    metric = load_lpips("vgg")
    loss_lpips = load_lpips("alex")

    def distance(a, b):
        return loss_lpips(a, b) + (a - b).square().mean(dim=(1, 2, 3))

    modes = {
        "encoder, 1 pass": dict(iterations=1),
        f"encoder, {enc.config.iterations} passes": dict(),
        "passes + 50 optimisation steps": dict(optimize=50, distance=distance),
        f"passes + {args.ceiling} steps (ceiling)": dict(optimize=args.ceiling, distance=distance),
    }
    enc.invert(gen, images=[frames[0]], align="none")  # warm-up
    rows = {}
    for name, settings in modes.items():
        lp, seconds = [], []
        for frame in frames:
            started = time.perf_counter()
            codes = enc.invert(gen, images=[frame], align="none", **settings)
            seconds.append(time.perf_counter() - started)
            with torch.no_grad():
                lp.append(float(metric(gen.render(codes, 1)[:, 0], frame[None])))
        rows[name] = {"seconds_per_image": sum(seconds) / len(seconds), "lpips_vgg": sum(lp) / len(lp)}
        row = rows[name]
        print(f"{name:>36}: {row['seconds_per_image']:.3f} s/image, LPIPS-VGG {row['lpips_vgg']:.4f}")
    ceiling = rows[list(modes)[-1]]
    default = rows[list(modes)[1]]
    summary = {
        "lpips_ratio_to_ceiling": default["lpips_vgg"] / ceiling["lpips_vgg"],
        "time_ratio_to_ceiling": default["seconds_per_image"] / ceiling["seconds_per_image"],
        "threads": torch.get_num_threads(),
        "images": len(frames),
    }
    print(json.dumps({"modes": rows, **summary}, indent=2))


if __name__ == "__main__":
    main()
