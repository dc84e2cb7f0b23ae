"""`stylevid invert` and `stylevid animate`: references -> codes, and a real person animated."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from stylevid import builtin, options
from stylevid.api import DEFAULT_CHUNK
from stylevid.options import UsageError

DEFAULT_NETWORK = "builtin:synth64"


def _encoder_for(args: argparse.Namespace) -> str:
    if args.encoder:
        return args.encoder
    if builtin.is_builtin(args.network):
        return args.network  # a built-in model's own encoder
    raise UsageError(
        f"--network {args.network} is not a built-in: pass --encoder (from stylevid train-encoder)"
    )


def _lpips_distance(device):
    """LPIPS-AlexNet + L2: what --optimize minimises (the reported LPIPS is VGG's)."""
    from stylevid.metrics.lpips import load_lpips  # noqa: PLC0415

    lpips = load_lpips("alex", device=device)
    return lambda a, b: lpips(a, b) + (a - b).square().mean(dim=(1, 2, 3))


def _load(args: argparse.Namespace):
    import stylevid  # noqa: PLC0415

    gen = stylevid.load(args.network, device=args.device)
    enc = stylevid.load_encoder(_encoder_for(args), device=args.device)
    enc.check_generator(gen)
    return gen, enc


def _invert(args: argparse.Namespace) -> int:
    import stylevid  # noqa: PLC0415

    if (args.images is None) == (args.video is None):
        raise UsageError("stylevid invert needs --images A.jpg [B.jpg ...] or --video V.mp4 (one of the two)")
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise UsageError(
            f"--out {out}: codes are written as .safetensors; use {out.with_suffix('.safetensors')}"
        )
    options.require_files("--images", args.images or [])
    options.require_files("--video", [args.video] if args.video else [])
    gen, enc = _load(args)
    distance = _lpips_distance(gen.device) if args.optimize else None
    refs = {"images": args.images} if args.images else {"video": args.video}
    result = enc.invert_full(
        gen,
        **refs,
        align=args.align,
        optimize=args.optimize,
        seconds=args.seconds,
        distance=distance,
        progress=options.progress(args),
    )
    codes = result.codes
    sources = args.images or [args.video]
    stylevid.save_codes(
        out,
        codes,
        {
            "network": str(args.network),
            "generator_sha256": gen.sha256,
            "references": [str(s) for s in sources],
        },
    )
    print(
        f"wrote {out}: {len(codes)} row(s), identity fused over {result.weights.shape[1]} reference(s)"
        f" (weights {', '.join(f'{w:.2f}' for w in result.weights[0].tolist())}); encoder"
        f" {result.seconds['encode']:.2f} s, optimisation {result.seconds['optimize']:.2f} s"
    )
    if args.preview:
        frames = 1 if args.images else min(len(result.weights[0]), 64)
        stylevid.save_video(gen.render(codes, frames), args.preview, fps=25, nrow=len(codes))
        print(f"wrote {args.preview}")
    return 0


def _animate(args: argparse.Namespace) -> int:
    import stylevid  # noqa: PLC0415

    if args.drive is not None and args.motion_seed is not None:
        raise UsageError("give --drive VIDEO or --motion-seed S, not both")
    options.require_files("--refs", args.refs)
    frames, show = args.frames, options.progress(args)
    drive = None if args.drive is None else stylevid.read_video(args.drive)  # before the work: it may not fit
    if drive is not None and frames > len(drive):
        raise UsageError(
            f"--frames {frames}: the driving video {args.drive} has {len(drive)} frames; ask for at most that"
        )
    gen, enc = _load(args)
    person = enc.invert(gen, images=args.refs, align=args.align, shared_background=True, progress=show)[0]
    if drive is not None:
        motion = enc.invert(gen, video=drive[:frames], align=args.align, progress=show)
    else:
        motion = gen.sample(1, seed=args.motion_seed or 0, frames=frames)
    background = person.background
    if args.background_seed is not None:
        background = gen.sample(1, seed=args.background_seed, frames=1).background
    codes = person.replace(pose=motion.pose, lighting=motion.lighting, background=background)
    chunks = gen.frames(codes, frames)
    bar = tqdm(chunks, desc="render", unit="chunk", total=-(-frames // DEFAULT_CHUNK), disable=not show)
    stylevid.save_video(bar, args.out, fps=args.fps)
    print(f"wrote {args.out}: {frames} frames of the person in {', '.join(map(str, args.refs))}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", default=DEFAULT_NETWORK, help=f"the generator (default {DEFAULT_NETWORK})")
    p.add_argument("--encoder", default=None, help="its encoder (default: a built-in model's own)")
    p.add_argument(
        "--align",
        choices=["face", "none"],
        default="face",
        help="face: crop the face as `stylevid prepare` does (default); none: the images are such crops",
    )
    p.add_argument("--device", type=options.device, default="cpu")


def register_cli(jobs) -> None:
    inv = jobs.add_parser("invert", help="photos or a video -> codes (identity fused over the references)")
    _common(inv)
    inv.add_argument("--images", nargs="+", default=None, help="reference photos of one person")
    inv.add_argument("--video", default=None, help="a video to invert (pose and lighting as trajectories)")
    inv.add_argument(
        "--out", required=True, help="codes file (.safetensors), loadable with stylevid.load_codes"
    )
    inv.add_argument(
        "--optimize",
        type=options.non_negative_int,
        default=0,
        help="refine the codes by STEPS of optimisation",
    )
    inv.add_argument(
        "--seconds",
        type=options.float_in(0, 1e6, open_low=True),
        default=None,
        help="time limit of --optimize",
    )
    inv.add_argument(
        "--preview", type=options.video_file, default=None, help="also render the codes to this video"
    )
    inv.set_defaults(run=_invert)

    ani = jobs.add_parser(
        "animate", help="the person in --refs, moved by a driving video or a sampled motion"
    )
    _common(ani)
    ani.add_argument("--refs", nargs="+", required=True, help="photos of the person")
    ani.add_argument("--drive", default=None, help="a video whose pose and lighting drive the person")
    ani.add_argument(
        "--motion-seed", type=options.non_negative_int, default=None, help="a sampled motion instead"
    )
    ani.add_argument(
        "--background-seed", type=options.non_negative_int, default=None, help="a sampled background"
    )
    ani.add_argument("--frames", type=options.positive_int, default=64)
    ani.add_argument("--fps", type=options.frame_rate, default=25.0)
    ani.add_argument(
        "--out", required=True, type=options.video_file, help="the video (.mp4, .gif) or frame sheet (.png)"
    )
    ani.set_defaults(run=_animate)
