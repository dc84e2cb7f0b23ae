"""The `stylevid` command line: one subcommand per job."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from stylevid import options, threads
from stylevid.options import UsageError

MAX_GRID = 64  # videos in one --grid video; more would not fit a screen or memory


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


def _generate(args: argparse.Namespace) -> int:
    import stylevid  # noqa: PLC0415

    if args.grid and len(args.seeds) > MAX_GRID:
        raise UsageError(
            f"--grid with {len(args.seeds)} seeds: a grid shows at most {MAX_GRID};"
            " give fewer --seeds or drop --grid"
        )
    grid = args.grid and len(args.seeds) > 1
    file = options.video_out(args.out, len(args.seeds) + grid, "--seeds" + " with --grid" * grid)
    gen = stylevid.load(args.network, device=args.device)
    out = Path(args.out)
    # One seed at a time: the first video is written at once, and memory holds one video's codes.
    for seed in tqdm(args.seeds, desc="videos", unit="video", disable=not options.progress(args)):
        codes = gen.sample_seeds([seed], frames=args.frames, psi=args.psi)
        path = file or out / f"seed{seed:04d}.{args.format}"
        stylevid.save_video(gen.frames(codes[0], args.frames, args.chunk), path, fps=args.fps)
    if grid:
        codes = gen.sample_seeds(args.seeds, frames=args.frames, psi=args.psi)
        stylevid.save_video(
            gen.frames(codes, args.frames, args.chunk), out / f"grid.{args.format}", fps=args.fps
        )
    print(f"wrote {len(args.seeds)} video(s) of {args.frames} frames to {out}")
    return 0


def _edit(args: argparse.Namespace) -> int:
    import stylevid  # noqa: PLC0415
    from stylevid.codes import Codes  # noqa: PLC0415

    pose = {name: getattr(args, name) for name in POSE_OPTIONS if getattr(args, name) is not None}
    light = {
        name: getattr(args, f"light_{name}")
        for name in LIGHT_OPTIONS
        if getattr(args, f"light_{name}") is not None
    }
    if not (args.swap or args.freeze or args.interp or pose or light):
        raise UsageError(
            "stylevid edit: give at least one of --swap, --freeze, --interp, or a pose or light value"
            " (--yaw, --pitch, --roll, --light-azimuth, ...)"
        )
    if args.freeze and args.freeze_at > args.frames - 1:
        raise UsageError(
            f"--freeze-at {args.freeze_at:g} is past the last frame ({args.frames - 1:g} with --frames"
            f" {args.frames}); pass a time from 0 to {args.frames - 1}, or more --frames"
        )
    for option, edits in (("--swap", args.swap), ("--interp", args.interp)):
        for factor, seeds in edits:
            if len(seeds) != 2:
                raise UsageError(
                    f"{option} {factor}:... needs exactly two seeds, got {seeds}; write it like {factor}:0,1"
                )
    physical = int(bool(pose or light))
    file = options.video_out(args.out, len(args.swap + args.freeze + args.interp) + physical, "this edit")
    gen = stylevid.load(args.network, device=args.device)
    out = Path(args.out)
    jobs = []
    if physical:
        _check_controls(gen, args.network, {**pose, **light})
        codes = gen.sample_seeds(args.seeds, frames=args.frames, psi=args.psi)
        # A FROM:TO sweep runs from the first frame to the last.
        keys = lambda v: {0: v[0], args.frames - 1: v[1]} if isinstance(v, tuple) else v  # noqa: E731
        edited = codes.with_pose(**{k: keys(v) for k, v in pose.items()})
        edited = edited.with_light(**{k: keys(v) for k, v in light.items()})
        label = "-".join(f"{k}{_label(v)}" for k, v in {**pose, **light}.items())
        jobs.append((f"set-{label}", Codes.cat([codes, edited])))
    for factor, seeds in args.swap:
        codes = gen.sample_seeds(seeds, frames=args.frames, psi=args.psi)
        # Top row: the two originals; bottom row: each with the other's factor.
        jobs.append((f"swap-{factor}-{seeds[0]}-{seeds[1]}", Codes.cat([codes, codes.swap(factor, 0, 1)])))
    for factor, seeds in args.freeze:
        codes = gen.sample_seeds(seeds, frames=args.frames, psi=args.psi)
        name = "-".join(map(str, seeds))
        jobs.append((f"freeze-{factor}-{name}", Codes.cat([codes, codes.freeze(factor, args.freeze_at)])))
    for factor, seeds in args.interp:
        a, b = gen.sample(1, seeds[0], args.frames, args.psi), gen.sample(1, seeds[1], args.frames, args.psi)
        steps = [Codes.interpolate(a, b, k / (args.steps - 1), [factor]) for k in range(args.steps)]
        jobs.append((f"interp-{factor}-{seeds[0]}-{seeds[1]}", Codes.cat(steps)))
    for name, codes in tqdm(jobs, desc="edits", unit="video", disable=not options.progress(args)):
        path = file or out / f"{name}.{args.format}"
        # mp4/gif tile the videos (originals on top); a png sheet is one row of frames per video.
        nrow = None if path.suffix == ".png" else args.steps if name.startswith("interp") else len(codes) // 2
        stylevid.save_video(gen.frames(codes, args.frames, args.chunk), path, fps=args.fps, nrow=nrow)
        print(f"wrote {path}")
    return 0


POSE_OPTIONS = ("yaw", "pitch", "roll")
LIGHT_OPTIONS = ("azimuth", "elevation", "intensity", "ambient", "warmth", "strength")


def _label(value) -> str:
    return f"{value[0]:g}to{value[1]:g}" if isinstance(value, tuple) else f"{value:g}"


def _check_controls(gen, network: str, values: dict) -> None:
    """Refuse pose or light values the generator has no control for, or outside the range it learned."""
    controls = gen.controls
    if not controls:
        raise UsageError(
            f"{network} has no face layer (generator.face3d), so it has no yaw or light direction to set;"
            " use --swap, --freeze or --interp, or a model trained with the face layer (builtin:synth64)"
        )
    for name, value in values.items():
        option = f"--{name}" if name in POSE_OPTIONS else f"--light-{name}"
        if name not in controls:
            names = ", ".join(f"--{n}" if n in POSE_OPTIONS else f"--light-{n}" for n in controls)
            raise UsageError(f"{option}: {network}'s light has no {name}; it has {names}")
        low, high = controls[name]["low"], controls[name]["high"]
        for v in value if isinstance(value, tuple) else (value,):
            if not low <= v <= high:
                unit = controls[name]["unit"]
                raise UsageError(
                    f"{option} {v:g} is outside {low:g}..{high:g} {unit}, the range the model renders"
                )


def _train(args: argparse.Namespace) -> int:
    from stylevid.training.run import run_training  # noqa: PLC0415
    from stylevid.training.stop import Stopped  # noqa: PLC0415

    try:
        run_training(
            args.data,
            args.out,
            args.preset,
            args.resume,
            args.gpus,
            args.workers,
            args.device,
            args.run_dir,
            progress=options.progress(args),
            plan=args.plan,
            allow_new_data=args.allow_new_data,
            minutes=args.minutes,
            snapshot_minutes=args.snapshot_minutes,
            lr_g=args.lr_g,
            lr_d=args.lr_d,
            r1_gamma=args.r1_gamma,
            batch=args.batch,
            kimg=args.kimg,
        )
    except Stopped as stop:
        # Not a crash: the run is saved. 128 + the signal's number, as a shell reports it (130: SIGINT).
        if str(stop):
            print(stop, file=sys.stderr)
        return stop.status
    return 0


def _demo(args: argparse.Namespace) -> int:
    from stylevid.training.demo import run_demo  # noqa: PLC0415

    run_demo(
        args.out,
        videos=args.videos,
        frames=args.frames,
        minutes=args.minutes,
        workers=threads.loader_workers(args.plan) if args.workers is None else args.workers,
        render_workers=args.plan.free if args.workers is None else max(1, args.workers),
        progress=options.progress(args),
    )
    return 0


def _add_render_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--network",
        required=True,
        help="checkpoint (.safetensors) written by stylevid, or a built-in model: builtin:synth64",
    )
    p.add_argument("--frames", type=options.positive_int, default=64, help="frames per video (default 64)")
    p.add_argument("--fps", type=options.frame_rate, default=25.0)
    p.add_argument("--psi", type=options.truncation, default=1.0, help="truncation of every factor (1: none)")
    p.add_argument(
        "--out", required=True, help="output folder, or for one video its file (.mp4, .gif or .png)"
    )
    p.add_argument("--format", choices=["mp4", "gif", "png"], default="mp4")
    p.add_argument("--chunk", type=options.positive_int, default=16, help="frames rendered at once (memory)")
    p.add_argument("--device", type=options.device, default="cpu", help="torch device, e.g. cuda or cuda:1")


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

    generate = jobs.add_parser("generate", help="render one video per seed from a checkpoint")
    _add_render_options(generate)
    generate.add_argument("--seeds", type=options.seeds, required=True, help="e.g. 0-7 or 0,3,5")
    generate.add_argument("--grid", action="store_true", help="also write all seeds as one grid video")
    generate.set_defaults(run=_generate)

    edit = jobs.add_parser("edit", help="swap, freeze or interpolate factors between seeds")
    _add_render_options(edit)
    edit.add_argument(
        "--swap",
        type=options.factor_seeds,
        action="append",
        default=[],
        metavar="FACTOR:S1,S2",
        help="exchange FACTOR between seeds S1 and S2 (originals on top, swapped below)",
    )
    edit.add_argument(
        "--freeze",
        type=options.moving_factor_seeds,
        action="append",
        default=[],
        metavar="FACTOR:S[,S...]",
        help="hold pose or lighting still (originals on top, frozen below)",
    )
    edit.add_argument(
        "--freeze-at", type=options.frame_time, default=0.0, help="the time a frozen factor shows"
    )
    edit.add_argument(
        "--interp",
        type=options.factor_seeds,
        action="append",
        default=[],
        metavar="FACTOR:S1,S2",
        help="interpolate FACTOR from seed S1 to S2 in --steps videos",
    )
    edit.add_argument("--steps", type=options.int_in(2), default=5, help="videos from S1 to S2 (at least 2)")
    physical = edit.add_argument_group(
        "pose and light (a model with the face layer, e.g. builtin:synth64)",
        "each a number held over the video, or FROM:TO swept from the first frame to the last (write"
        " --yaw=-40:40); originals on top, edited below",
    )
    physical.add_argument("--seeds", type=options.seeds, default=[0], help="videos to edit (default 0)")
    for name, what in (
        ("yaw", "> 0: the nose to the image's right"),
        ("pitch", "> 0: the nose up"),
        ("roll", "> 0: counter-clockwise"),
    ):
        physical.add_argument(
            f"--{name}", type=options.setting, metavar="DEG", help=f"head {name} in degrees ({what})"
        )
    for name, what in (
        ("azimuth", "degrees, > 0: from the image's right"),
        ("elevation", "degrees, > 0: from above"),
        ("intensity", "the key light's strength"),
        ("ambient", "the ambient level"),
        ("warmth", "-1 bluish .. 1 orange"),
        ("strength", "a spherical-harmonics light's directional share"),
    ):
        physical.add_argument(
            f"--light-{name}", type=options.setting, metavar="V", help=f"light {name} ({what})"
        )
    edit.set_defaults(run=_edit)

    train = jobs.add_parser("train", help="train a model from scratch on a video dataset, or resume a run")
    train.add_argument(
        "--data", default=None, help="dataset: folder, .zip, or folder of videos (with --resume: the run's)"
    )
    train.add_argument("--out", default="runs", help="parent of the run folders (default runs/)")
    train.add_argument(
        "--preset",
        default=None,
        choices=["synth64", "ffs256"],
        help="default synth64; a resume keeps the run's",
    )
    train.add_argument("--resume", default=None, help="a run folder to continue from its latest snapshot")
    train.add_argument(
        "--allow-new-data", action="store_true", help="with --resume: continue on data other than the run's"
    )
    # These override the preset, or with --resume the run's own settings from its snapshot on.
    train.add_argument(
        "--kimg",
        type=options.float_in(0, 1e6, open_low=True),
        default=None,
        help="training length in thousands of clips",
    )
    train.add_argument(
        "--batch", type=options.positive_int, default=None, help="clips per step over all GPUs"
    )
    train.add_argument("--lr-g", type=options.learning_rate, default=None, help="generator learning rate")
    train.add_argument("--lr-d", type=options.learning_rate, default=None, help="discriminator learning rate")
    train.add_argument("--r1-gamma", type=options.float_in(0, 1e4), default=None, help="R1 weight (0: off)")
    train.add_argument(
        "--gpus", type=options.positive_int, default=1, help="processes to launch with torchrun (gloo on CPU)"
    )
    train.add_argument(
        "--workers",
        type=options.non_negative_int,
        default=None,
        help="data loading processes per training process (default: one per core the training"
        f" threads leave free, at most {threads.MAX_LOADER_WORKERS})",
    )
    train.add_argument(
        "--device", type=options.device, default=None, help="cuda or cpu (default: cuda when available)"
    )
    train.add_argument(
        "--minutes",
        type=options.float_in(0, 1e6, open_low=True),
        default=None,
        help="stop after this much wall time, with a snapshot (resume to go on)",
    )
    train.add_argument(
        "--snapshot-minutes",
        type=options.float_in(0, 1e6, open_low=True),
        default=None,
        help="also save a snapshot this often (default 5 on the CPU, 20 on a GPU)",
    )
    train.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)  # set by the torchrun relaunch
    train.set_defaults(run=_train)

    from stylevid.data import prepare, synthetic  # noqa: PLC0415

    synthetic.register_cli(jobs)
    prepare.register_cli(jobs)

    from stylevid.metrics import compute, probes  # noqa: PLC0415

    compute.register_cli(jobs)
    probes.register_cli(jobs)

    from stylevid.training import encoder_run  # noqa: PLC0415

    encoder_run.register_cli(jobs)

    from stylevid import inversion_cli  # noqa: PLC0415

    inversion_cli.register_cli(jobs)

    from stylevid.studio import cli as studio_cli  # noqa: PLC0415

    studio_cli.register_cli(jobs)

    demo = jobs.add_parser(
        "demo", help="synthetic faces -> train synth64 on this CPU -> report (about 15 minutes)"
    )
    demo.add_argument("--out", default="demo")
    demo.add_argument("--videos", type=options.positive_int, default=192)
    demo.add_argument("--frames", type=options.positive_int, default=32)
    demo.add_argument(
        "--minutes", type=options.float_in(0, 1e4, open_low=True), default=12.5, help="training time budget"
    )
    demo.add_argument(
        "--workers",
        type=options.non_negative_int,
        default=None,
        help="processes rendering the dataset and loading clips (default: as stylevid train's)",
    )
    demo.set_defaults(run=_demo)

    for name, command in jobs.choices.items():
        if name != "ops":
            options.add_threads(command)
            options.add_quiet(command)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = parser().parse_args(argv)
    if args.job == "ops":
        return args.run(args)
    args.plan = threads.plan(args.threads)  # the commands that start loader workers size them by it
    with threads.applied(args.plan):
        return args.run(args)


def console(argv: list[str] | None = None) -> int:
    """The `stylevid` program: main, with the errors a user can act on shown as one message, not a traceback.

    Exit status 2: bad usage (argparse's refusals of an option, UsageError: options that do not fit
    together). Exit status 1: a runtime error that says what to do (bad checkpoints, missing files or
    networks, unusable data, a failed kernel build, a non-finite loss, GPU out of memory).
    STYLEVID_TRACEBACK=1 raises instead, to show where.
    """
    import os  # noqa: PLC0415

    import torch  # noqa: PLC0415

    from stylevid.custom_ops.build import BuildError  # noqa: PLC0415
    from stylevid.metrics.compute import MetricsSetupError  # noqa: PLC0415
    from stylevid.training.trainer import NonFiniteLoss  # noqa: PLC0415

    runtime = (ValueError, OSError, MetricsSetupError, NonFiniteLoss, BuildError, torch.cuda.OutOfMemoryError)
    try:
        return main(argv)
    except runtime as exc:
        if os.environ.get("STYLEVID_TRACEBACK"):
            raise
        print(f"stylevid: error: {exc}\n(STYLEVID_TRACEBACK=1 shows where)", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print("stylevid: interrupted", file=sys.stderr)
        return 130
