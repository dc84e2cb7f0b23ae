"""Train the ffs256 networks for minutes at 64² or the preset's own 256²: ADA and bfloat16 on, random clips.

    python benchmarks/gpu_train.py [--seconds 180] [--resolution 64|128|256] [--device cuda] [--batch N]
                                   [--profile-steps N] [--json OUT]
    python benchmarks/gpu_train.py --device cpu --seconds 20      # smoke test of this script, no GPU

On the CPU the ops default to `--ops emulate`: the kernels' CPU emulation, so the smoke test runs
the path a GPU runs (the compiled ops' autograd Functions and dtypes; slow: a step of 4 clips at
64² takes about a minute on 2 cores). `--ops ref` times the PyTorch reference instead.

The networks are the ffs256 preset's: StyleGAN2's 256² widths (512 channels up to 32², 256 at
64², ...), at --resolution the layers above it left out (at 64² the 128² and 256² ones), and the
clip's frames fused at 32² as at 256². The training settings are ffs256's (batch 64, lazy R1, EMA,
the disentanglement losses), with the augmentation probability started at START_P so that ADA's
transforms run from the first step (the controller moves it from there), and bfloat16 autocast,
which the Trainer uses on CUDA only.

Printed, and written to --json: sec/kimg of every tick (the first includes the warm-up) and of the
ticks after it, peak memory, the GPU's busy share over those ticks (nvidia-smi's utilization.gpu,
benchmarks/gpu_busy.py), with --profile-steps the milliseconds of each phase, every loss of the
last tick and whether all are finite, and whether an op fell back to the PyTorch reference: the
dispatcher's RuntimeWarning caught during the run, which implementation each op gives a tensor on
the device, and `stylevid ops status`. The last line, `summary: ...`, holds the key figures. The
exit status is 1 when a loss is not finite, an op fell back on a GPU, or no tick was logged. The
run folder (its stats.jsonl and the final snapshot, about 1.6 GB at 64²) is left in a new folder
under $TMPDIR.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from gpu_busy import GpuBusy
from train import RandomClips

from stylevid.config import ModelConfig, preset
from stylevid.custom_ops import dispatch
from stylevid.training.config import TrainConfig, train_preset
from stylevid.training.distributed import ProcessGroup
from stylevid.training.run_folder import STATS
from stylevid.training.trainer import NonFiniteLoss, Trainer

RESOLUTIONS = (32, 64, 128, 256)  # the fusion at 32² needs at least 32²; 256² is the preset's own
START_P = 0.3
TICK_KIMG = 1.0  # 16 steps of 64 clips: several ticks in a minute at 256² on an H100
CPU_BATCH = 4  # on the CPU one step of 64 clips of these widths takes minutes
OPS = ("upfirdn2d", "bias_act")
FALLBACK = "kernel is unavailable"  # in the dispatcher's warning when it uses the reference instead


def ffs256_at(resolution: int, batch: int | None) -> TrainConfig:
    """The ffs256 settings with its networks at `resolution` (same widths), ADA on, ticks every TICK_KIMG."""
    cfg = train_preset("ffs256")
    model = ModelConfig(
        dataclasses.replace(cfg.model.generator, resolution=resolution),
        dataclasses.replace(cfg.model.discriminator, resolution=resolution),
    )
    if not (cfg.augment.enabled and cfg.mixed_precision):
        raise ValueError("the ffs256 preset no longer enables ADA and mixed precision; update this benchmark")
    # The clips are random, with no face for the faces teacher to find: the pair terms are timed with
    # the synthetic teacher (a CNN on the GPU), from the first step.
    pairs = dataclasses.replace(cfg.disentangle, teacher="synthetic", start_kimg=0.0, ramp_kimg=0.0)
    # One snapshot, at the end: the run is timed, and a snapshot every few ticks would be timed too.
    return dataclasses.replace(
        cfg,
        model=model,
        batch=batch or cfg.batch,
        tick_kimg=TICK_KIMG,
        snapshot_ticks=10**9,
        disentangle=pairs,
    )


def widths(cfg: TrainConfig) -> dict[str, dict[int, int]]:
    """Channels per resolution 4..R of G and D, and of the 256 preset's layers at those resolutions."""
    full = preset("256")
    resolutions = [2**i for i in range(2, int(math.log2(cfg.model.generator.resolution)) + 1)]
    return {
        "generator": {r: cfg.model.generator.channels(r) for r in resolutions},
        "discriminator": {r: cfg.model.discriminator.channels(r) for r in resolutions},
        "256 preset": {r: full.generator.channels(r) for r in resolutions},
    }


def ticks(run_dir: Path) -> list[dict]:
    """The tick records the Trainer logged to stats.jsonl."""
    path = run_dir / STATS
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if "stats" in r]


def steady_window(records: list[dict], start: float) -> tuple[float, float] | None:
    """(from, to) in time.monotonic() of the ticks after the first (or the only one), from their sec/kimg."""
    if not records:
        return None
    ends, kimg, now = [], 0.0, start
    for record in records:
        now += record["sec_per_kimg"] * (record["kimg"] - kimg)
        kimg = record["kimg"]
        ends.append(now)
    return (ends[0], ends[-1]) if len(ends) > 1 else (start, ends[0])


def phase_profile(trainer: Trainer, device: torch.device, steps: int) -> dict[str, float]:
    """Median milliseconds of each phase (forward, backward, gradient sums) and of whole steps.

    Every phase and step is bracketed by a device synchronisation, so these are the device's work
    plus the host's launch overhead of each part, not the overlapped timing of training; 'other'
    is a step's remainder (optimisers, EMA, ADA). Runs `steps` more training steps.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times: dict[str, list[float]] = {}
    untimed = trainer.gradients

    def timed(index: int) -> torch.Tensor:
        sync()
        started = time.perf_counter()
        loss = untimed(index)
        sync()
        times.setdefault(trainer.phases[index].name, []).append(time.perf_counter() - started)
        return loss

    trainer.gradients = timed
    try:
        for _ in range(steps):
            sync()
            started = time.perf_counter()
            trainer.step()
            sync()
            times.setdefault("step", []).append(time.perf_counter() - started)
    finally:
        del trainer.gradients
    per_phase = {name: 1000 * statistics.median(v) for name, v in times.items()}
    # A lazy phase runs once every `interval` steps: its share of an average step.
    shares = {p.name: per_phase.get(p.name, 0.0) * len(times.get(p.name, [])) / steps for p in trainer.phases}
    per_phase["other"] = max(1000 * statistics.mean(times["step"]) - sum(shares.values()), 0.0)
    return {name: round(ms, 2) for name, ms in per_phase.items()}


def train(
    cfg: TrainConfig, device: torch.device, seconds: float, run_dir: Path, profile_steps: int = 0
) -> dict:
    """Train for `seconds` on random clips: the run's ticks, failure, warnings, timings, GPU busy share.

    Then, with profile_steps, time each phase over that many more steps (phase_profile).
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    clips = RandomClips(cfg.model.generator.resolution, cfg.model.discriminator.frames, count=cfg.batch)
    failure = None
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught, GpuBusy(device) as busy:
        warnings.simplefilter("always")
        trainer = Trainer(cfg, clips, run_dir, process=ProcessGroup(device=device), workers=0)
        trainer.ada.p = START_P
        built = time.monotonic()
        try:
            trainer.train(progress=False, seconds=seconds)
        except NonFiniteLoss as exc:
            failure = str(exc)
        finished = time.monotonic()
        phases = phase_profile(trainer, device, profile_steps) if profile_steps and not failure else None
    reserved = torch.cuda.max_memory_reserved(device) / 2**20 if device.type == "cuda" else None
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    records = ticks(run_dir)
    window = steady_window(records, built)
    return {
        "ticks": records,
        "gpu_busy": busy.share(*window) if window else None,
        "steps": trainer.step_index,
        "kimg": trainer.nimg / 1000,
        "final_p": float(trainer.ada.p),  # a device tensor while training
        "failure": failure,
        "warnings": messages,
        "setup_s": round(built - started, 1),
        "train_call_s": round(finished - built, 1),
        "phase_ms": phases,
        "peak_reserved_mib": reserved,
        "run_dir": str(run_dir),
    }


def ops_used(device: torch.device) -> dict[str, str]:
    """Which implementation each op gives a tensor on `device` in this process, after the run."""
    probe = torch.empty(1, device=device)
    kernel = "CUDA kernel" if device.type == "cuda" else "CPU emulation of the kernel"
    return {name: "reference" if dispatch.plugin(name, probe) is None else kernel for name in OPS}


def report(cfg: TrainConfig, device: torch.device, seconds: float, run: dict) -> dict:
    """The run's summary: what is printed and written to --json, with the verdict."""
    last = run["ticks"][-1] if run["ticks"] else None
    losses = last["stats"] if last else {}
    # The ticks after the first, which holds the warm-up (kernel loads, cuDNN's autotuning).
    steady = [t["sec_per_kimg"] for t in run["ticks"][1:]] or [t["sec_per_kimg"] for t in run["ticks"]]
    used = ops_used(device)
    fallbacks = [m for m in run["warnings"] if FALLBACK in m]
    problems = []
    if run["failure"]:
        problems.append(run["failure"])
    if last is None:
        problems.append("no tick was logged")
    elif not all(math.isfinite(v) for v in losses.values()):
        problems.append(f"the last tick holds values that are not finite: {losses}")
    if device.type == "cuda" and (fallbacks or "reference" in used.values()):
        problems.append(f"ops fell back to the PyTorch reference: {used}; {fallbacks}")
    return {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "resolution": cfg.model.generator.resolution,
        "batch": cfg.batch,
        "widths": widths(cfg),
        "bf16_autocast": cfg.mixed_precision and device.type == "cuda",
        "ada_start_p": START_P,
        "ada_final_p": run["final_p"],
        "seconds": seconds,
        "steps": run["steps"],
        "kimg": run["kimg"],
        "sec_per_kimg": [round(t["sec_per_kimg"], 2) for t in run["ticks"]],
        "steady_sec_per_kimg": round(statistics.median(steady), 2) if steady else None,
        "gpu_busy": run["gpu_busy"],
        "peak_memory_mib": last["memory_mib"] if last else None,
        "peak_reserved_mib": run["peak_reserved_mib"],
        "last_tick": losses,
        "finite": bool(last) and all(math.isfinite(v) for v in losses.values()),
        "ops_used": used,
        "fallback_warnings": fallbacks,
        "other_warnings": [m for m in run["warnings"] if FALLBACK not in m],
        "ops_status": dispatch.status(),
        "setup_s": run["setup_s"],
        "train_call_s": run["train_call_s"],
        "phase_ms": run["phase_ms"],
        "run_dir": run["run_dir"],
        "problems": problems,
    }


def show(summary: dict) -> None:
    s = summary
    print(f"torch {s['torch']}, {s['device']} {s['gpu'] or ''}, batch {s['batch']} at {s['resolution']}²")
    for part, channels in s["widths"].items():
        print(f"  channels {part:<13} " + " ".join(f"{r}²:{c}" for r, c in channels.items()))
    autocast = "on" if s["bf16_autocast"] else "off"
    print(
        f"bf16 autocast: {autocast}; ADA p {s['ada_start_p']} at the start, {s['ada_final_p']:.4f} at the end"
    )
    print(
        f"{s['steps']} steps, {s['kimg']:.3f} kimg in {s['seconds']:g} s (setup {s['setup_s']} s, train()"
        f" {s['train_call_s']} s with the last tick and snapshot)"
    )
    print(f"sec/kimg per tick (the first includes the warm-up): {s['sec_per_kimg']}")
    if s["gpu_busy"] is not None:
        print(f"GPU busy over the ticks after the first (nvidia-smi utilization.gpu): {s['gpu_busy']:.0%}")
    reserved = f", {s['peak_reserved_mib']:.0f} MiB reserved" if s["peak_reserved_mib"] is not None else ""
    memory = "GPU allocated" if s["device"].startswith("cuda") else "RSS"
    print(f"peak memory: {s['peak_memory_mib']:.0f} MiB {memory}{reserved}")
    if s["phase_ms"]:
        parts = ", ".join(f"{name} {ms:g}" for name, ms in s["phase_ms"].items())
        print(f"milliseconds per phase (synchronised; 'other': optimisers, EMA, ADA per step): {parts}")
    print(f"last tick ({'all finite' if s['finite'] else 'NOT all finite'}):")
    for name, value in s["last_tick"].items():
        print(f"  {name:<22} {value:.5g}")
    print(f"ops used on {s['device']}: {s['ops_used']}")
    for line in s["fallback_warnings"] + s["other_warnings"]:
        print(f"warning: {line}")
    print("stylevid ops status:")
    for line in s["ops_status"]:
        print(f"  {line}")
    print(f"run folder (stats.jsonl, the final snapshot): {s['run_dir']}")
    print("verdict: " + ("ok" if not s["problems"] else "FAILED\n  - " + "\n  - ".join(s["problems"])))
    print(f"summary: {key_figures(s)}")


def key_figures(s: dict) -> str:
    """One line: resolution, batch, steady sec/kimg, peak memory, GPU busy share (gpu_check.sh's table)."""
    parts = [f"ffs256 at {s['resolution']}², batch {s['batch']}"]
    if s["steady_sec_per_kimg"] is not None:
        parts.append(f"{s['steady_sec_per_kimg']:g} sec/kimg")
    if s["peak_memory_mib"] is not None:
        parts.append(f"peak {s['peak_memory_mib'] / 1024:.1f} GiB")
    if s["gpu_busy"] is not None:
        parts.append(f"GPU busy {s['gpu_busy']:.0%}")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="training time (default 180)")
    parser.add_argument("--device", default="cuda", help="cuda (or cuda:N), or cpu for a smoke test")
    parser.add_argument(
        "--resolution",
        type=int,
        default=64,
        choices=RESOLUTIONS,
        help="frame size; 256 is the ffs256 preset's own (default 64)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help=f"clips per step (default: ffs256's 64; {CPU_BATCH} on the CPU)",
    )
    parser.add_argument(
        "--ops",
        choices=dispatch.IMPLS,
        default=None,
        help="the ops' implementation (default: $STYLEVID_OPS, else auto on CUDA and emulate on the CPU)",
    )
    parser.add_argument(
        "--profile-steps",
        type=int,
        default=0,
        help="after training, time each phase over this many more steps (default 0: none)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(
            f"--device {args.device}: no CUDA GPU is visible here; use --device cpu for a smoke test"
        )
    default = os.environ.get(dispatch.ENV_VAR) or ("emulate" if device.type == "cpu" else "auto")
    os.environ[dispatch.ENV_VAR] = args.ops or default
    cfg = ffs256_at(args.resolution, args.batch or (CPU_BATCH if device.type == "cpu" else None))
    # Kept, not deleted: the Trainer's TensorBoard writer may still be writing into it at exit.
    run_dir = Path(tempfile.mkdtemp(prefix="stylevid-gpu-train-"))
    run = train(cfg, device, args.seconds, run_dir, args.profile_steps)
    summary = report(cfg, device, args.seconds, run)
    show(summary)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
