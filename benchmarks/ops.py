"""Times the CUDA kernels against the PyTorch reference on the layers of a 256x256 StyleGAN2.

    python benchmarks/ops.py [--device cuda] [--iters N] [--batch N] [--json OUT]
    python benchmarks/ops.py --device cpu --iters 2      # smoke test of this script, no GPU

Shapes are those of the StyleGAN2 config-f generator and discriminator at 256x256 (channel_base
32768, channel_max 512): 512 channels at 4x4 to 64x64, 256 at 128x128, 128 at 256x256, batch 4.

- upsample2d (4x4 [1,3,3,1] filter, up=2): the generator's feature maps entering each block, 4..128.
- downsample2d (same filter, down=2) and filter2d: the discriminator's feature maps, 256..8.
- conv2d_resample 3x3 up=2: the generator's first conv of each block, ch(r/2) -> ch(r).
- conv2d_resample 3x3 and 1x1 down=2: the discriminator's second conv and skip of each block.
- bias_act (lrelu, clamp 256, as conv_clamp): every activation, forward and forward+backward.
- float16 variants of the upfirdn2d and bias_act cases, as the top resolutions run in fp16.

Each call is timed alone: warm-up, then the median of --iters calls, each between CUDA events
after a synchronize (on the CPU: perf_counter). Targets, reported as PASS/MISS and never as the
exit status: the CUDA path faster on every shape, and bias_act forward+backward at least 2x
faster on every shape. On the CPU only the reference runs, in float32, on fewer shapes (--quick).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from stylevid.custom_ops import (
    bias_act,
    conv2d_resample,
    dispatch,
    downsample2d,
    filter2d,
    setup_filter,
    upsample2d,
)

CHANNEL_BASE, CHANNEL_MAX = 32768, 512
BIAS_ACT_TARGET = 2.0
DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16"}


def channels(res: int) -> int:
    """Feature channels at resolution `res`, as StyleGAN2 config-f: min(32768 / res, 512)."""
    return min(CHANNEL_BASE // res, CHANNEL_MAX)


@dataclass(frozen=True)
class Case:
    """One op on one shape: op(*inputs, impl=...) with random inputs of `shapes`."""

    name: str
    dtype: torch.dtype
    shapes: tuple[tuple[int, ...], ...]  # the activation first, then bias or weight
    op: Callable[..., torch.Tensor]
    backward: bool = False  # time forward + backward of every input

    def label(self) -> str:
        """The activation's shape, and the weight's for a conv: '4x512x8x8 w512x512x3x3'."""
        x, *rest = self.shapes
        return " ".join(["x".join(map(str, x)), *("w" + "x".join(map(str, s)) for s in rest if len(s) == 4)])


@dataclass
class Row:
    """One line of the table; cuda_ms and speedup are None where the CUDA path did not run."""

    case: str
    dtype: str
    shape: str
    ref_ms: float
    cuda_ms: float | None
    speedup: float | None


def cases(batch: int, max_res: int, f: torch.Tensor, halves: bool) -> list[Case]:
    """Every case, for a generator and discriminator up to `max_res` (a power of two, >= 8).

    halves: add the float16 variants of the upfirdn2d and bias_act cases.
    """
    blocks = [2**k for k in range(3, max_res.bit_length())]  # the resampling blocks: 8 .. max_res
    gen_in = [(batch, channels(r // 2), r // 2, r // 2) for r in blocks]  # entering a G block
    disc_in = [(batch, channels(r), r, r) for r in reversed(blocks)]  # entering a D block
    activations = [(batch, channels(r), r, r) for r in [4, *blocks]]
    both = (torch.float32, torch.float16) if halves else (torch.float32,)
    out = [Case("upsample2d up=2", dt, (s,), partial(upsample2d, f=f)) for dt in both for s in gen_in]
    out += [Case("downsample2d down=2", dt, (s,), partial(downsample2d, f=f)) for dt in both for s in disc_in]
    out += [Case("filter2d", dt, (s,), partial(filter2d, f=f)) for dt in both for s in disc_in]
    up = partial(conv2d_resample, f=f, up=2, padding=1)
    for n, c, h, w in gen_in:
        out.append(
            Case("conv2d_resample 3x3 up=2", torch.float32, ((n, c, h, w), (channels(2 * h), c, 3, 3)), up)
        )
    for k in (3, 1):
        down = partial(conv2d_resample, f=f, down=2, padding=k // 2)
        for n, c, h, w in disc_in:
            shapes = ((n, c, h, w), (channels(h // 2), c, k, k))
            out.append(Case(f"conv2d_resample {k}x{k} down=2", torch.float32, shapes, down))
    for backward, name in ((False, "bias_act lrelu fwd"), (True, "bias_act lrelu fwd+bwd")):
        op = partial(bias_act, act="lrelu", clamp=256)
        out += [Case(name, dt, (s, (s[1],)), op, backward) for dt in both for s in activations]
    return out


def median_ms(call: Callable[[], object], device: torch.device, iters: int, warmup: int) -> float:
    """Median wall time of one call, in milliseconds."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            call()
            end.record()
            torch.cuda.synchronize(device)
            samples.append(start.elapsed_time(end))
        else:
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1e3)
    return statistics.median(samples)


def measure(case: Case, impls: list[str], device: torch.device, iters: int, warmup: int) -> Row:
    """Time `case` with each implementation on the same random inputs."""
    gen = torch.Generator(device).manual_seed(0)
    inputs = [
        torch.randn(s, generator=gen, device=device, dtype=case.dtype).requires_grad_(case.backward)
        for s in case.shapes
    ]
    if case.backward:
        dy = torch.randn(
            _forward(case.op, inputs, "ref").shape, generator=gen, device=device, dtype=case.dtype
        )
    times = {}
    for impl in impls:
        if case.backward:
            call = partial(_forward_backward, case.op, inputs, dy, impl)
        else:
            call = partial(_forward, case.op, inputs, impl)
        times[impl] = median_ms(call, device, iters, warmup)
    cuda_ms = times.get("cuda")
    speedup = times["ref"] / cuda_ms if cuda_ms else None
    return Row(case.name, DTYPE_NAMES[case.dtype], case.label(), times["ref"], cuda_ms, speedup)


def _forward(op, inputs, impl):
    with torch.no_grad():
        return op(*inputs, impl=impl)


def _forward_backward(op, inputs, dy, impl):
    # autograd.grad rather than backward(): no .grad accumulation adds a kernel to either side.
    return torch.autograd.grad(op(*inputs, impl=impl), inputs, dy)


def cuda_kernels_error(device: torch.device) -> str | None:
    """None if both CUDA kernels load (building them if needed), else why not."""
    probe = torch.zeros(1, device=device)
    try:
        for name in ("upfirdn2d", "bias_act"):
            dispatch.plugin(name, probe, "cuda")
    except RuntimeError as exc:
        return str(exc)
    return None


def summary(rows: list[Row], cuda_error: str | None) -> list[str]:
    """The verdict lines: the smallest speedup overall and on bias_act fwd+bwd, against the targets."""
    if cuda_error:
        return [
            f"speedups: n/a ({cuda_error.splitlines()[0]})",
            "targets: MISS (the CUDA kernels did not load)",
        ]
    if any(r.speedup is None for r in rows):
        return ["speedups: n/a (the reference only, on the CPU)", "targets: not judged without a GPU"]
    lines = []
    worst = min(rows, key=lambda r: r.speedup)
    verdict = "PASS" if worst.speedup > 1 else "MISS"
    lines.append(
        f"min speedup over all {len(rows)} shapes: {worst.speedup:.2f}x ({worst.case} {worst.dtype} "
        f"{worst.shape}); target: > 1x on every shape: {verdict}"
    )
    fused = [r for r in rows if r.case.startswith("bias_act") and r.case.endswith("fwd+bwd")]
    if fused:
        worst = min(fused, key=lambda r: r.speedup)
        total = sum(r.ref_ms for r in fused) / sum(r.cuda_ms for r in fused)
        verdict = "PASS" if worst.speedup >= BIAS_ACT_TARGET else "MISS"
        lines.append(
            f"bias_act fwd+bwd speedup: min {worst.speedup:.2f}x ({worst.dtype} {worst.shape}), "
            f"{total:.2f}x on the summed time; target: >= {BIAS_ACT_TARGET:g}x on every shape: {verdict}"
        )
    return lines


def column_widths(all_cases: list[Case]) -> tuple[int, int]:
    """Widths of the case and shape columns, known before anything is timed."""
    return max(len(c.name) for c in all_cases), max(len(c.label()) for c in all_cases)


def header(widths: tuple[int, int]) -> str:
    """The table's first line."""
    return f"{'case':<{widths[0]}}  dtype  {'shape':<{widths[1]}}  {'ref ms':>9}  {'cuda ms':>9}  speedup"


def format_row(r: Row, widths: tuple[int, int]) -> str:
    """One table line, aligned under header(widths)."""
    cuda = f"{r.cuda_ms:9.3f}" if r.cuda_ms is not None else f"{'n/a':>9}"
    ratio = f"{r.speedup:6.2f}x" if r.speedup is not None else f"{'n/a':>7}"
    return f"{r.case:<{widths[0]}}  {r.dtype:<5}  {r.shape:<{widths[1]}}  {r.ref_ms:9.3f}  {cuda}  {ratio}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (or cuda:N), or cpu for a smoke test")
    parser.add_argument("--iters", type=int, default=20, help="timed calls per case and implementation")
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed calls before them (default 3; 1 with --quick)"
    )
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 4; 1 with --quick)")
    parser.add_argument(
        "--max-res", type=int, default=None, help="top resolution (default 256; 32 with --quick)"
    )
    parser.add_argument(
        "--quick",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="batch 1 up to 32x32 (default: on for --device cpu)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and the verdict here")
    args = parser.parse_args(argv)
    quick = args.quick if args.quick is not None else args.device == "cpu"
    args.batch = args.batch or (1 if quick else 4)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 3)
    args.max_res = args.max_res or (32 if quick else 256)
    if args.max_res < 8 or args.max_res & (args.max_res - 1):
        parser.error(f"--max-res {args.max_res} must be a power of two of at least 8, e.g. 256")
    if args.iters < 1 or args.warmup < 0:
        parser.error(f"--iters {args.iters} must be >= 1 and --warmup {args.warmup} >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (nonzero only for a bad command line)."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"--device {args.device}: no CUDA GPU is visible; use --device cpu for a smoke test",
            file=sys.stderr,
        )
        return 2
    impls, cuda_error = ["ref"], None
    if device.type == "cuda":
        # set_device refuses a device without an index ('cuda'), which means the current one.
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
        torch.cuda.set_device(device)
        started = time.monotonic()
        cuda_error = cuda_kernels_error(device)
        if cuda_error:
            print(f"CUDA kernels unavailable, timing the reference only:\n{cuda_error}", file=sys.stderr)
        else:
            impls.append("cuda")
            print(f"CUDA kernels loaded in {time.monotonic() - started:.1f} s")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, batch {args.batch}, up to {args.max_res}x{args.max_res}")
    print(f"median of {args.iters} calls after {args.warmup} warm-up calls\n")

    # float16 depthwise convolutions on the CPU take seconds a call: the smoke test skips them.
    halves = device.type == "cuda"
    all_cases = cases(args.batch, args.max_res, setup_filter([1, 3, 3, 1], device=device), halves)
    widths = column_widths(all_cases)
    print(header(widths))
    rows = []
    for case in all_cases:
        rows.append(measure(case, impls, device, args.iters, args.warmup))
        print(format_row(rows[-1], widths), flush=True)
    verdict = summary(rows, cuda_error)
    print("\n" + "\n".join(verdict))
    if args.json:
        record = {"device": name, "torch": torch.__version__, "batch": args.batch, "iters": args.iters}
        record |= {"rows": [asdict(r) for r in rows], "summary": verdict}
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
