"""The `stylevid` command line: one subcommand per job."""

from __future__ import annotations

import argparse
import sys
import time


def _ops_status(args: argparse.Namespace) -> int:
    from stylevid.custom_ops import dispatch  # noqa: PLC0415

    print("\n".join(dispatch.status(args.impl)))
    return 0


def _ops_build(args: argparse.Namespace) -> int:
    from stylevid.custom_ops import build  # noqa: PLC0415

    failed = 0
    for name in args.ops:
        started = time.monotonic()
        try:
            spec = build.spec_for(name, arch=args.arch)
            module = build.build(spec, verbose=args.verbose)
        except build.BuildError as exc:
            print(f"{name}: FAILED\n{exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: ok in {time.monotonic() - started:.1f} s (arch {spec.arch}) -> {module.__file__}")
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of the `stylevid` command."""
    top = argparse.ArgumentParser(prog="stylevid", description=__doc__)
    jobs = top.add_subparsers(dest="job", required=True)

    ops = jobs.add_parser("ops", help="the custom CUDA kernels: status and prebuild")
    ops_jobs = ops.add_subparsers(dest="ops_job", required=True)
    status = ops_jobs.add_parser("status", help="print which implementation each op will use, and why")
    status.add_argument("--impl", choices=["auto", "cuda", "ref"], default=None, help="as STYLEVID_OPS")
    status.set_defaults(run=_ops_status)
    prebuild = ops_jobs.add_parser("build", help="compile the CUDA kernels into the cache now")
    prebuild.add_argument(
        "--arch",
        default=None,
        help="GPU architectures, e.g. '9.0' or '8.0;9.0' (default: the visible GPUs)",
    )
    prebuild.add_argument(
        "--ops", nargs="+", default=["upfirdn2d", "bias_act"], choices=["upfirdn2d", "bias_act"]
    )
    prebuild.add_argument("--verbose", action="store_true", help="show the compiler's output")
    prebuild.set_defaults(run=_ops_build)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    return args.run(args)
