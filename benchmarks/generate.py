"""Rendering speed on the CPU: frames per second at 64² and 128², and per-frame cost at T=16 vs T=512.

    python benchmarks/generate.py [--resolutions 64 128] [--long 512] [--device cpu]

Models are the presets with random weights (speed does not depend on training). The long video
is streamed chunk by chunk and dropped, as `stylevid generate` does, so the peak resident memory
shows whether memory grows with length.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from stylevid.api import VideoGenerator
from stylevid.config import preset
from stylevid.networks import Generator


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stream(gen: VideoGenerator, frames: int, chunk: int) -> float:
    """Seconds to render one video of `frames` frames, discarding each chunk."""
    codes = gen.sample(1, seed=0, frames=frames)
    if gen.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for piece in gen.frames(codes, frames, chunk):
        piece.sum().item()  # forces the work (and a sync on GPU) without keeping the frames
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", nargs="+", default=["64", "128"])
    parser.add_argument("--short", type=int, default=16)
    parser.add_argument("--long", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(
        f"{'preset':>6} {'fps (T=' + str(args.short) + ')':>14} {'ms/frame T=' + str(args.short):>16} "
        f"{'ms/frame T=' + str(args.long):>17} {'ratio':>6} {'peak RSS MiB':>13}"
    )
    for name in args.resolutions:
        torch.manual_seed(0)
        cfg = preset(name)
        gen = VideoGenerator(Generator(cfg.generator), cfg).to(args.device)
        _stream(gen, args.short, args.chunk)  # warm-up: kernel selection, allocator
        short = _stream(gen, args.short, args.chunk) / args.short
        rss_before = _peak_rss_mib()
        long = _stream(gen, args.long, args.chunk) / args.long
        rss_after = _peak_rss_mib()
        print(
            f"{name:>6} {1 / short:>14.1f} {short * 1000:>16.1f} {long * 1000:>17.1f} {long / short:>6.2f} "
            f"{rss_before:>6.0f}->{rss_after:<6.0f}"
        )
    print("ratio = per-frame cost at the long length / at the short one; 1.00 is flat.")


if __name__ == "__main__":
    main()
