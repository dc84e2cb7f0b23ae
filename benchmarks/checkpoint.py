"""Checkpoint save and load time, with and without the tensor SHA-256, at a preset's size.

    python benchmarks/checkpoint.py [--preset 256] [--repeats 5]

The checkpoint holds a Generator and a TemporalDiscriminator of the preset with random weights.
"Without" saves as save_checkpoint did before the hash (safetensors' serialisation, then the same
atomic write) and loads with verify=False; the difference is the hashing's cost. Times are the best
of --repeats, with the file in the page cache, so they show CPU cost rather than the disk's speed.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save

from stylevid import checkpoint
from stylevid.atomic import write_atomically
from stylevid.config import preset
from stylevid.networks import Generator
from stylevid.networks.discriminator import TemporalDiscriminator


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """The shortest of `repeats` wall-clock times of `run()`, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="256")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    config = preset(args.preset)
    modules = {"G": Generator(config.generator), "D": TemporalDiscriminator(config.discriminator)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.safetensors"

        def save_checkpoint() -> None:
            checkpoint.save_checkpoint(path, modules, {"model": config.to_dict()})

        save_checkpoint()
        with safe_open(path, framework="pt") as f:
            flat = {key: f.get_tensor(key) for key in f.keys()}
            metadata = {key: value for key, value in f.metadata().items() if key != "tensor_sha256"}
        size = path.stat().st_size
        data = path.read_bytes()
        rows = [
            (
                "save",
                best_of(args.repeats, lambda: write_atomically(path, save(flat, metadata=metadata))),
                best_of(args.repeats, save_checkpoint),
            ),
            (
                "load",
                best_of(args.repeats, lambda: checkpoint.load_checkpoint(path, verify=False)),
                best_of(args.repeats, lambda: checkpoint.load_checkpoint(path)),
            ),
        ]
        sha = best_of(args.repeats, lambda: hashlib.sha256(data).digest())
    print(f"preset {args.preset}: {len(flat)} tensors, {size / 2**20:.1f} MiB; best of {args.repeats}")
    print(f"{'':6}{'without hash':>14}{'with hash':>12}{'extra':>10}")
    for name, without, with_hash in rows:
        extra = (with_hash / without - 1) * 100
        print(f"{name:6}{without * 1e3:>12.1f}ms{with_hash * 1e3:>10.1f}ms{extra:>9.0f}%")
    print(f"plain hashlib.sha256 of the file's bytes: {sha * 1e3:.1f} ms ({size / sha / 2**30:.2f} GiB/s)")


if __name__ == "__main__":
    main()
