"""Factor probes: a small CNN that reads the synthetic dataset's ground-truth factors back from a frame.

The probe sees one 64² frame and predicts every factor value of FACTOR_NAMES (20 identity, 3 pose,
5 lighting, 10 background numbers), each standardised by the mean and standard deviation it has over
the frames the probe was trained on. It is the measuring instrument of the leakage matrix
(metrics/leakage.py): how far its identity outputs move when only the pose latent changes, and so on.

`train_probes` renders independent random frames (factors from sample_factors, video i of the set
depending only on (seed, i)), trains the network and writes it with its validation scores to one
.safetensors file. The file the package ships, ``probes/synthetic64.safetensors``, is made by
``stylevid train-probes --into-package`` with its default settings (`make probes`); loading it checks
its SHA-256. Without --into-package the command writes to the working folder (DEFAULT_OUT).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from stylevid import checkpoint, options
from stylevid.config import FACTORS
from stylevid.data import synthetic
from stylevid.data.index import mirror_coefficients
from stylevid.metrics.weights import file_sha256
from stylevid.video import from_uint8

PROBE_RESOLUTION = 64
SHIPPED = Path(__file__).parent / "probes" / "synthetic64.safetensors"
# Where `stylevid train-probes` writes by default: the working folder, so the shipped file is replaced
# only when asked (--into-package).
DEFAULT_OUT = Path("synthetic64-probes.safetensors")
# The shipped file's hash: a stale or damaged copy fails loudly instead of measuring with other probes.
SHIPPED_SHA256 = None
SIZES = {factor: len(synthetic.FACTOR_NAMES[factor]) for factor in FACTORS}
OUTPUTS = sum(SIZES.values())
# Where each factor's outputs start in the probe's flat output (its mean and std, the R² columns).
STARTS = {factor: sum(SIZES[g] for g in FACTORS[:i]) for i, factor in enumerate(FACTORS)}
WIDTHS = (24, 48, 96, 160)  # channels at 32², 16², 8², 4²


class FactorProbe(nn.Module):
    """Frames [N, 3, H, W] in [-1, 1] -> {factor: standardised predictions [N, len(FACTOR_NAMES[factor])]}.

    `widths`: channels at 32², 16², 8², 4² (the evaluation probes' are WIDTHS; a training teacher
    has its own, so the judge is never the network a loss was computed in).
    """

    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        if len(widths) != 4 or any(int(w) < 1 for w in widths):
            raise ValueError(f"widths={widths!r} must be four positive channel counts (32², 16², 8², 4²)")
        self.widths = tuple(int(w) for w in widths)
        layers, channels = [], 3
        for i, width in enumerate(self.widths):
            layers += [nn.Conv2d(channels, width, 3, 2, 1), nn.SiLU()]
            if i > 0:  # a second convolution where it is cheap: 16² and below
                layers += [nn.Conv2d(width, width, 3, 1, 1), nn.SiLU()]
            channels = width
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * 16, 256), nn.SiLU(), nn.Linear(256, OUTPUTS)
        )
        # The training targets' statistics: predictions are in these standard units.
        self.register_buffer("mean", torch.zeros(OUTPUTS))
        self.register_buffer("std", torch.ones(OUTPUTS))

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames of shape {list(frames.shape)} must be [N, 3, H, W]")
        if frames.shape[-2:] != (PROBE_RESOLUTION, PROBE_RESOLUTION):
            # Area averaging for larger frames, as the dataset's box filter; bilinear for smaller.
            mode = "area" if frames.shape[-1] > PROBE_RESOLUTION else "bilinear"
            frames = F.interpolate(frames, size=PROBE_RESOLUTION, mode=mode)
        out = self.head(self.trunk(frames))
        return dict(zip(FACTORS, out.split(list(SIZES.values()), dim=1), strict=True))

    def values(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Predictions in the factors' own units (radians, [0, 1] attributes ...), per factor [N, D]."""
        scaled = torch.cat(list(self(frames).values()), dim=1) * self.std + self.mean
        return dict(zip(FACTORS, scaled.split(list(SIZES.values()), dim=1), strict=True))


def readable_columns(probe: FactorProbe, min_r2: float = 0.5) -> dict[str, list[int]]:
    """Per factor, the outputs the probe reads (validation R² >= min_r2 when it was trained).

    The others are near-constant guesses whose noise would only dilute a factor's movement.
    """
    r2 = getattr(probe, "validation_r2", {}).get("values", {})
    columns = {}
    for factor, names in synthetic.FACTOR_NAMES.items():
        keep = [i for i, name in enumerate(names) if r2.get(f"{factor}.{name}", 1.0) >= min_r2]
        if not keep:
            raise ValueError(
                f"the probe reads no {factor} value with validation R² >= {min_r2}: lower min_r2, or"
                " retrain it (stylevid train-probes)"
            )
        columns[factor] = keep
    return columns


def targets(factors: synthetic.VideoFactors, frame: int = 0) -> np.ndarray:
    """The probe's targets [OUTPUTS] of one frame: identity, pose, lighting, background concatenated."""
    parts = {
        "identity": factors.identity,
        "pose": factors.pose[frame],
        "lighting": factors.lighting[frame],
        "background": factors.background,
    }
    return np.concatenate([parts[f] for f in FACTORS]).astype(np.float32)


def _render_one(job: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, index = job
    factors = synthetic.sample_factors(np.random.default_rng([seed, index]), frames=1)
    return synthetic.render_video(factors, PROBE_RESOLUTION)[0], targets(factors)


def render_frames(count: int, seed: int, workers: int = 2, progress: bool = True):
    """`count` independent random frames uint8 [count, 64, 64, 3], their targets float32 [count, OUTPUTS]."""
    jobs = [(seed, i) for i in range(count)]
    frames = np.empty((count, PROBE_RESOLUTION, PROBE_RESOLUTION, 3), dtype=np.uint8)
    values = np.empty((count, OUTPUTS), dtype=np.float32)
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(_render_one, jobs, chunksize=64) if pool else map(_render_one, jobs)
        for i, (frame, value) in enumerate(tqdm(results, total=count, desc="render", disable=not progress)):
            frames[i], values[i] = frame, value
    finally:
        if pool is not None:
            pool.terminate()
    return frames, values


def _as_input(frames: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1]."""
    return from_uint8(frames)


def r_squared(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column of [N, D] arrays: 1 - residual variance / variance."""
    residual = ((predicted - actual) ** 2).mean(0)
    return 1 - residual / actual.var(0)


def train_probes(
    out: str | Path,
    frames: int = 20000,
    validation: int = 1000,
    epochs: int = 12,
    batch: int = 64,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    floor_videos: int = 64,
    widths: tuple[int, ...] = WIDTHS,
) -> dict:
    """Train a FactorProbe of `widths` on rendered frames, write it to `out` (.safetensors); returns scores.

    Scores: R² on `validation` frames rendered from another seed, per factor value and per factor (mean),
    and the leakage floor (leakage_floor with `floor_videos` videos).
    """
    started = time.monotonic()
    torch.manual_seed(seed)
    train_x, train_y = render_frames(frames, seed, workers, progress)
    val_x, val_y = render_frames(validation, seed + 1, workers, progress)
    probe = FactorProbe(widths)
    probe.mean.copy_(torch.from_numpy(train_y.mean(0)))
    probe.std.copy_(torch.from_numpy(train_y.std(0)).clamp_min(1e-6))
    target = (torch.from_numpy(train_y) - probe.mean) / probe.std
    steps = epochs * (frames // batch)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    order = torch.Generator().manual_seed(seed)
    scale, offset = _mirror_map()
    with tqdm(total=steps, desc="train probes", disable=not progress) as bar:
        for _ in range(epochs):
            perm = torch.randperm(frames, generator=order)
            for start in range(0, frames - batch + 1, batch):
                pick = perm[start : start + batch]
                x = _as_input(train_x[pick.numpy()])
                y = target[pick]
                if torch.rand((), generator=order) < 0.5:  # mirrored frames: twice the data
                    x, y = (
                        x.flip(-1),
                        ((y * probe.std + probe.mean) * scale + offset - probe.mean) / probe.std,
                    )
                loss = F.mse_loss(torch.cat(list(probe(x).values()), 1), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}")
    probe.eval()
    scores = _scores(probe, val_x, val_y)
    config = {
        "probe": {
            "resolution": PROBE_RESOLUTION,
            "widths": list(probe.widths),
            "factor_names": synthetic.FACTOR_NAMES,
        }
    }
    probe.validation_r2 = scores
    floor = leakage_floor(probe, seed=seed + 2, videos=floor_videos)
    settings = dict(
        frames=frames, validation=validation, epochs=epochs, batch=batch, seed=seed, widths=list(probe.widths)
    )
    metadata = {
        "settings": settings,
        "validation_r2": scores,
        "floor": floor,
        "seconds": round(time.monotonic() - started),
    }
    checkpoint.save_checkpoint(out, {"probe": probe}, config, metadata)
    return {**scores, "floor": floor}


def leakage_floor(probe: FactorProbe, seed: int = 2, videos: int = 64) -> dict | None:
    """The raw leakage the probe reads on the renderer itself (GroundTruthGenerator): what 'diagonal' reads.

    No generator can score better than about this with these probes: the rest is the probes' own
    confusion (a darker skin under a brighter light, a turned head's hair ...).
    """
    from stylevid.metrics.leakage import ProbeReadout, leakage_matrix  # noqa: PLC0415 - leakage imports us

    try:
        readout = ProbeReadout(probe)
    except ValueError as exc:  # a probe too weak to read some factor: no floor, and the metric refuses it
        warnings.warn(f"no leakage floor: {exc}", stacklevel=2)
        return None
    result = leakage_matrix(
        GroundTruthGenerator(), readout, videos=videos, frames=4, step=10, seed=seed, progress=False
    )
    return {key: result[key] for key in ("raw_leakage", "control", "share", "effect", "videos", "frames")}


def _floor(saved: dict | None) -> dict | None:
    """A probe file's floor as leakage_floor gives it (files saved before raw_leakage was named: leakage)."""
    if saved is None or "raw_leakage" in saved:
        return saved
    return {("raw_leakage" if key == "leakage" else key): value for key, value in saved.items()}


def _mirror_map() -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, offset) [OUTPUTS]: a left-right mirrored frame's target is scale * target + offset."""
    pairs = [mirror_coefficients(f, synthetic.FACTOR_NAMES[f]) for f in FACTORS]
    return tuple(torch.tensor(sum((list(p[k]) for p in pairs), [])) for k in (0, 1))


@torch.no_grad()
def _scores(probe: FactorProbe, frames: np.ndarray, values: np.ndarray) -> dict:
    predicted = torch.cat(
        [
            torch.cat(list(probe.values(_as_input(frames[i : i + 256])).values()), 1)
            for i in range(0, len(frames), 256)
        ]
    ).numpy()
    r2 = r_squared(predicted, values)
    names = [f"{f}.{n}" for f in FACTORS for n in synthetic.FACTOR_NAMES[f]]
    per_factor = {f: float(r2[STARTS[f] : STARTS[f] + SIZES[f]].mean()) for f in FACTORS}
    return {"factors": per_factor, "values": {n: round(float(v), 4) for n, v in zip(names, r2, strict=True)}}


def load_probes(path: str | Path | None = None, device: str | torch.device = "cpu") -> FactorProbe:
    """The factor probe from `path`, by default the one the package ships (its SHA-256 checked)."""
    path = Path(path) if path is not None else SHIPPED
    if not path.is_file():
        raise FileNotFoundError(
            f"no factor-probe file at {path}: make one with `{_train_command(path)}`"
            + (" (the package should ship it: reinstall stylevid)" if path == SHIPPED else "")
        )
    if path == SHIPPED and SHIPPED_SHA256 is not None and file_sha256(path) != SHIPPED_SHA256:
        raise ValueError(
            f"{path} has SHA-256 {file_sha256(path)}, not the shipped probes' {SHIPPED_SHA256}:"
            " the installed file is damaged or stale; reinstall stylevid"
        )
    ckpt = checkpoint.load_checkpoint(path, map_location=device)
    names = ckpt.config.get("probe", {}).get("factor_names")
    if names != synthetic.FACTOR_NAMES:
        raise checkpoint.CheckpointError(
            f"{path} holds probes for factors {names}, but this stylevid's synthetic dataset has"
            f" {synthetic.FACTOR_NAMES}: retrain them with `{_train_command(path)}`"
        )
    probe = FactorProbe(tuple(ckpt.config["probe"].get("widths", WIDTHS))).to(device)
    checkpoint.load_module_state(probe, ckpt.tensors["probe"], "probe")
    probe.weights_sha256 = file_sha256(path)
    probe.validation_r2 = ckpt.metadata.get("validation_r2", {})
    probe.floor = _floor(ckpt.metadata.get("floor"))
    return probe.eval().requires_grad_(False)


@dataclasses.dataclass(frozen=True)
class TruthCodes:
    """Ground-truth factors of synthetic videos, edited as Codes are: the codes of GroundTruthGenerator."""

    videos: tuple[synthetic.VideoFactors, ...]

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index) -> TruthCodes:
        return TruthCodes(self.videos[index])

    def with_factor(self, factor: str, source: TruthCodes) -> TruthCodes:
        """Take `factor` from `source` video by video."""
        pairs = zip(self.videos, source.videos, strict=True)
        return TruthCodes(tuple(dataclasses.replace(v, **{factor: getattr(s, factor)}) for v, s in pairs))


class GroundTruthGenerator:
    """The synthetic renderer as a generator: disentangled by construction, so its leakage is the probes' own.

    Used by leakage_matrix like a VideoGenerator: `sample` draws factors (video i from (seed, i)),
    `render` draws frames [N, T, 3, R, R] in [-1, 1] at integer times.
    """

    def __init__(self, resolution: int = PROBE_RESOLUTION):
        self.resolution = resolution

    def sample(self, n: int, seed: int = 0, frames: int = 256) -> TruthCodes:
        return TruthCodes(
            tuple(synthetic.sample_factors(np.random.default_rng([seed, i]), frames) for i in range(n))
        )

    def render(self, codes: TruthCodes, t) -> torch.Tensor:
        t = torch.as_tensor(t).long().numpy()
        videos = [
            synthetic.render_video(
                dataclasses.replace(v, pose=v.pose[t], lighting=v.lighting[t]), self.resolution
            )
            for v in codes.videos
        ]
        return from_uint8(np.stack(videos))


def _train_command(path: Path) -> str:
    """The `stylevid train-probes` command line that writes the probes to `path`."""
    return f"stylevid train-probes {'--into-package' if path == SHIPPED else f'--out {path}'}"


def _train_probes(args: argparse.Namespace) -> int:
    scores = train_probes(
        args.out,
        args.frames,
        args.validation,
        args.epochs,
        args.batch,
        args.seed,
        args.workers,
        widths=args.widths,
        progress=options.progress(args),
    )
    print(f"wrote {args.out} (sha256 {file_sha256(args.out)})")
    for factor, r2 in scores["factors"].items():
        print(f"  {factor:<11} validation R² {r2:.3f}")
    if scores["floor"] is not None:
        print(f"  raw leakage of the renderer itself (the floor): {scores['floor']['raw_leakage']:.3f}")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `stylevid train-probes`."""
    parser = subparsers.add_parser(
        "train-probes",
        help="train the factor probes of the leakage metric on rendered synthetic frames",
        description="Render random synthetic frames and train the probe network that reads their factors"
        " back; the package ships the result of the defaults, written with --into-package (make probes).",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        type=Path,
        help=f"the .safetensors file to write (default: {DEFAULT_OUT}, in the working folder)",
    )
    where.add_argument(
        "--into-package",
        dest="out",
        action="store_const",
        const=SHIPPED,
        help=f"replace the probes the installed package ships and the leakage metric loads ({SHIPPED})",
    )
    parser.add_argument(
        "--frames", type=options.positive_int, default=20000, help="training frames to render"
    )
    parser.add_argument(
        "--validation", type=options.positive_int, default=1000, help="validation frames (another seed)"
    )
    parser.add_argument("--epochs", type=options.positive_int, default=12)
    parser.add_argument("--batch", type=options.positive_int, default=64)
    parser.add_argument("--seed", type=options.non_negative_int, default=0)
    parser.add_argument("--workers", type=options.positive_int, default=2, help="rendering processes")
    parser.add_argument(
        "--widths",
        type=options.int_list(4),
        default=WIDTHS,
        help="channels at 32², 16², 8², 4², comma-separated (default: the evaluation probes' %(default)s)",
    )
    parser.set_defaults(out=DEFAULT_OUT, run=_train_probes)
    return parser
