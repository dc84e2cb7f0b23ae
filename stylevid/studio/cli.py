"""`stylevid studio`: the four factors as live controls in a local web page."""

from __future__ import annotations

import argparse

from stylevid import options

DEFAULT_NETWORK = "builtin:synth64"


def _studio(args: argparse.Namespace) -> int:
    import stylevid  # noqa: PLC0415
    from stylevid.studio.app import serve  # noqa: PLC0415
    from stylevid.studio.backend import Studio  # noqa: PLC0415

    gen = stylevid.load(args.network, device=args.device)
    try:
        serve(Studio(gen, args.network, frames=args.frames, fps=args.fps), args.host, args.port)
    except KeyboardInterrupt:
        print("stylevid studio: stopped")
    return 0


def register_cli(jobs) -> None:
    """Add `stylevid studio`."""
    studio = jobs.add_parser("studio", help="a local web page: the four factors as live controls")
    studio.add_argument(
        "--network", default=DEFAULT_NETWORK, help=f"checkpoint or built-in model (default {DEFAULT_NETWORK})"
    )
    studio.add_argument("--port", type=options.int_in(0, 65535), default=7860, help="0: any free port")
    studio.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; the studio has no login)",
    )
    studio.add_argument("--frames", type=options.positive_int, default=64, help="clip length (default 64)")
    studio.add_argument("--fps", type=options.frame_rate, default=25.0, help="play and export rate")
    studio.add_argument("--device", type=options.device, default="cpu", help="torch device, e.g. cuda")
    studio.set_defaults(run=_studio)
