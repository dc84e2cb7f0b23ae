"""The `stylevid synth` command: render the synthetic dataset."""

from __future__ import annotations

import argparse
import time

from stylevid import options
from stylevid.data.synthetic.write import synthesize


def _synth(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        path = synthesize(
            args.out,
            args.videos,
            args.frames,
            args.resolution,
            args.seed,
            args.fps,
            args.workers,
            progress=options.progress(args),
        )
    except ValueError as exc:
        raise SystemExit(f"stylevid synth: {exc}") from None
    print(
        f"wrote {args.videos} videos of {args.frames} frames at {args.resolution}² to {path}"
        f" in {time.monotonic() - started:.0f} s"
    )
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `synth` command (render the synthetic dataset) to a CLI's subparsers; returns its parser."""
    synth = subparsers.add_parser(
        "synth", help="render the synthetic face-video dataset, whose factors are known for every frame"
    )
    synth.add_argument("--out", required=True, help="dataset folder (an interrupted run resumes) or .zip")
    synth.add_argument("--videos", type=options.positive_int, required=True, help="number of videos")
    synth.add_argument(
        "--frames", type=options.positive_int, default=64, help="frames per video (default 64)"
    )
    synth.add_argument(
        "--resolution", type=options.positive_int, default=64, help="frame size in pixels (default 64)"
    )
    synth.add_argument(
        "--seed",
        type=options.non_negative_int,
        default=0,
        help="video i depends only on (seed, i) (default 0)",
    )
    synth.add_argument(
        "--fps", type=options.frame_rate, default=25.0, help="frame rate of the motion (default 25)"
    )
    synth.add_argument(
        "--workers", type=options.positive_int, default=2, help="rendering processes (default 2)"
    )
    synth.set_defaults(run=_synth)
    return synth
