"""Training speed: sec/kimg of the synth64 preset, and what the temporal discriminator costs over per-frame D.

    python benchmarks/train.py [--steps 6] [--device cpu] [--batch 8,32]

Data are random in-memory clips (loading is measured in benchmarks/data.py). The temporal
overhead compares, on the same clips, a forward+backward of the whole TemporalDiscriminator with
one of its per-frame path alone (the 2-D blocks and the per-frame head, i.e. what a per-frame
image discriminator would cost).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from stylevid.networks import TemporalDiscriminator
from stylevid.training.config import train_preset
from stylevid.training.distributed import ProcessGroup
from stylevid.training.trainer import Trainer


class RandomClips(torch.utils.data.Dataset):
    """Random clips [K, 3, R, R] with increasing times."""

    def __init__(self, resolution: int, k: int, count: int = 64):
        self.frames = torch.rand(count, k, 3, resolution, resolution) * 2 - 1
        self.times = torch.arange(k, dtype=torch.float32)

    def __len__(self) -> int:
        return self.frames.shape[0]

    def __getitem__(self, index: int) -> dict:
        return {"frames": self.frames[index], "times": self.times}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def sec_per_kimg(preset: str, steps: int, device: str, batch: int | None = None) -> tuple[float, float]:
    """(seconds per thousand real clips, peak memory in MiB) over `steps` steps after two warm-up steps."""
    cfg = train_preset(preset)
    if batch is not None:
        cfg = dataclasses.replace(cfg, batch=batch)
    model = cfg.model
    clips = RandomClips(model.generator.resolution, model.discriminator.frames)
    # The process's device is given at construction: the Trainer puts its networks there.
    trainer = Trainer(cfg, clips, "/tmp/stylevid-bench", process=ProcessGroup(device=torch.device(device)))
    if trainer.process.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.process.device)
    for _ in range(2):
        trainer.step()
    _sync(trainer.process.device)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    _sync(trainer.process.device)
    seconds = (time.perf_counter() - start) / steps
    on_gpu = trainer.process.device.type == "cuda"  # 'cuda:1' too, not only 'cuda'
    memory = torch.cuda.max_memory_allocated(trainer.process.device) / 2**20 if on_gpu else float("nan")
    return seconds / cfg.batch * 1000, memory


def temporal_overhead(preset: str, repeats: int, device: str) -> tuple[float, float]:
    """(ms of the whole D, ms of its per-frame path), forward + backward on one batch of clips."""
    cfg = train_preset(preset)
    c = cfg.model.discriminator
    disc = TemporalDiscriminator(c).to(device)
    frames = torch.randn(cfg.batch, c.frames, 3, c.resolution, c.resolution, device=device)
    times = torch.arange(c.frames, dtype=torch.float32, device=device).expand(cfg.batch, -1)

    def whole():
        scores = disc(frames, times)
        (scores["video"].sum() + scores["frames"].sum()).backward()

    def per_frame():
        x = disc.from_rgb(frames.flatten(0, 1))
        for block in [*disc.frame_blocks, *disc.image_blocks]:
            x = block(x)
        disc.image_head(x).sum().backward()

    out = []
    for fn in (whole, per_frame):
        fn()
        _sync(torch.device(device))
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        _sync(torch.device(device))
        out.append((time.perf_counter() - start) / repeats * 1000)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="synth64")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--batch", default=None, help="clips per step, or several comma-separated (default: the preset's)"
    )
    args = parser.parse_args()
    try:
        batches = [int(b) for b in args.batch.split(",")] if args.batch else [train_preset(args.preset).batch]
    except ValueError:
        parser.error(f"--batch {args.batch!r}: give whole numbers separated by commas, e.g. --batch 8,32")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, preset {args.preset}"
    )
    for batch in batches:
        seconds, memory = sec_per_kimg(args.preset, args.steps, args.device, batch)
        print(f"training: {seconds:.2f} sec/kimg, batch {batch}, peak {memory:.0f} MiB")
    whole, frames_only = temporal_overhead(args.preset, max(args.steps, 3), args.device)
    print(
        f"D forward+backward: temporal {whole:.1f} ms, per-frame path only {frames_only:.1f} ms, "
        f"ratio {whole / frames_only:.2f}"
    )


if __name__ == "__main__":
    main()
