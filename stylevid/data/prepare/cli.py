"""The `stylevid prepare` command: real face videos cropped into a dataset, and the report printed."""

from __future__ import annotations

import argparse

from stylevid import options
from stylevid.data.faces import DEFAULT_MARGIN
from stylevid.data.prepare.write import prepare


def _run_cli(args: argparse.Namespace) -> int:
    try:
        report = prepare(
            args.source,
            args.dest,
            args.resolution,
            args.fps,
            args.workers,
            args.min_frames,
            args.margin,
            progress=options.progress(args),
        )
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"stylevid prepare: {exc}") from exc
    print(report.summary())
    return 0 if report.prepared or report.resumed else 1


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `prepare` command (real face videos -> dataset) to the `stylevid` command's subparsers."""
    command = subparsers.add_parser(
        "prepare",
        help="crop the faces of real videos into a stylevid dataset",
        description="Prepare real face videos as a stylevid dataset: find the face, follow it smoothly,"
        " crop, resize, write.",
        epilog="Run it again to resume: videos already in the dataset are kept. A .zip is complete only when"
        " a run ends (a killed run starts over); a folder resumes even after a kill.",
    )
    command.add_argument(
        "--source", required=True, help="folder searched for .mp4/.avi/.mov/.mkv (recursively)"
    )
    command.add_argument("--dest", required=True, help="dataset folder, or a path ending in .zip")
    command.add_argument(
        "--resolution", type=options.positive_int, default=256, help="side of the square frames (default 256)"
    )
    command.add_argument(
        "--fps",
        type=options.frame_rate,
        default=None,
        help="dataset frame rate (default: the most common of the sources)",
    )
    command.add_argument(
        "--workers", type=options.positive_int, default=2, help="processes, one video each (default 2)"
    )
    command.add_argument(
        "--min-frames",
        type=options.positive_int,
        default=16,
        help="shortest clip kept, in frames (default 16)",
    )
    command.add_argument(
        "--margin",
        type=options.float_in(0, 10, open_low=True),
        default=DEFAULT_MARGIN,
        help=f"crop side / face box side (default {DEFAULT_MARGIN}: FFHQ's framing, hair to chin)",
    )
    command.set_defaults(run=_run_cli)
    return command
