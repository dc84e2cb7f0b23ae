"""The leakage matrix: change one latent of a video, and see how far each factor's measurement moves.

For `videos` pairs of sampled codes (base, other) the generator renders the base video, the base video
with one factor's latent taken from `other` (once per factor), and `other` itself. A readout measures
every factor in every frame; its distance between the base frame and a changed frame at the same time
is averaged over frames and videos:

- ``effect[f][g]``: how far measurement g moves when latent f alone changes, as a fraction of how far it
  moves when every latent changes (a video of another sample). Perfect disentanglement: 1 on the
  diagonal — a latent moves its own factor as much as a new sample does — and 0 elsewhere.
- ``share[f][g]``: row f of effect normalised to sum 1 — of what changing latent f moves, the part that
  lands on each factor. Diagonal when disentangled; a row is NaN when latent f moves nothing at all.
- ``raw_leakage`` = 1 - mean diagonal of share: 0 for a diagonal matrix, 0.75 when a change of any
  latent spreads evenly over the four factors. A readout is not perfect, so even a generator that is
  disentangled by construction reads above 0: that reading is the readout's ``floor``.
- ``leakage`` = (raw_leakage - floor) / (0.75 - floor), the scalar reported everywhere: 0 = as separate
  as the renderer itself, 1 = every latent moves every factor alike. None where there is no floor (real
  faces), where only the raw value exists. Read it with ``control`` (mean diagonal of effect): a
  generator that ignores its latents leaks nothing and controls nothing.

Readouts: on the synthetic dataset, the factor probes (metrics/probes.py) trained on its ground truth
(`ProbeReadout`); on real faces, measurements with no training (`stylevid.metrics.faces`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from stylevid.api import VideoGenerator
from stylevid.atomic import write_atomically
from stylevid.config import FACTORS
from stylevid.metrics.probes import FactorProbe, load_probes, readable_columns


class Readout(Protocol):
    """Measures the four factors in frames: features per factor, and a distance between two measurements."""

    weights_sha256: dict[str, str]

    def __call__(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Frames [N, 3, H, W] in [-1, 1] -> {factor: features [N, D]} (NaN where unmeasurable)."""

    def distance(self, factor: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances [N] between features [N, D]; NaN where either is unmeasurable."""


def rms_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Root mean square of a - b over the dimensions both measure, [N, D] x [N, D] -> [N] (NaN if none)."""
    # Written so that its gradient is finite wherever the value is used: a NaN (unmeasured) entry, even
    # one masked out later, would otherwise send 0 * NaN = NaN back through the square, nanmean's
    # division by a zero count, or the root; and two identical readings (the face layer makes some
    # pairs' frames equal where a factor cannot reach them) give 0, whose root has an infinite gradient.
    diff = a - b
    measured = ~torch.isnan(diff)
    diff = torch.where(measured, diff, torch.zeros_like(diff))
    count = measured.sum(dim=1)
    mean = diff.square().sum(dim=1) / count.clamp_min(1)
    positive = mean > 0
    root = torch.where(positive, mean, torch.ones_like(mean)).sqrt()
    distance = torch.where(positive, root, torch.zeros_like(root))
    return torch.where(count > 0, distance, torch.full_like(distance, math.nan))


class ProbeReadout:
    """The factor probes as a readout: standardised predictions compared by root mean square.

    Only the values the probe reads (validation R² >= min_r2, as recorded when it was trained) count:
    the others are near-constant guesses whose noise would only dilute a factor's movement.
    """

    def __init__(self, probe: FactorProbe | None = None, min_r2: float = 0.5, batch: int = 256):
        self.probe = probe if probe is not None else load_probes()
        self.batch = batch
        self.weights_sha256 = {"factor-probes": getattr(self.probe, "weights_sha256", "unsaved")}
        self.columns = readable_columns(self.probe, min_r2)

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        device = next(self.probe.parameters()).device
        parts = [self.probe(chunk.to(device)) for chunk in frames.split(self.batch)]
        return {f: torch.cat([p[f] for p in parts])[:, self.columns[f]].float().cpu() for f in FACTORS}

    def distance(self, factor: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return rms_distance(a, b)


def _variants(base, other) -> dict[str, object]:
    """The codes to render: the base, one per factor with that latent from `other`, and `other`."""
    return {"base": base, **{f: base.with_factor(f, other) for f in FACTORS}, "all": other}


@torch.no_grad()
def leakage_matrix(
    generator: VideoGenerator,
    readout: Readout | Callable,
    videos: int = 64,
    frames: int = 8,
    step: int = 4,
    seed: int = 0,
    batch: int = 8,
    progress: bool = True,
    floor: float | None = None,
    bootstrap: int = 1000,
) -> dict:
    """The leakage of `generator` measured by `readout` (see the module doc): matrices, scalars, counts.

    Frames: times 0, step, 2 step, ... (frames of them) of each video; `batch` videos are rendered
    at a time. Returns plain lists and floats: {leakage, raw_leakage, floor, control, control_per_factor,
    effect, share, moved, reference, measured, interval, factors, videos, frames}, `moved[f][g]` being
    the raw mean distance and `reference[g]` that of a whole new sample; `measured[g]` the fraction of
    frame pairs readout g could measure. `interval` holds bootstrap 95% intervals over videos
    (`bootstrap` resamples) of leakage, raw_leakage and control. `floor` is the raw leakage the readout
    measures on a generator disentangled by construction; without one, leakage and floor are None.
    """
    for name, value in (("videos", videos), ("frames", frames), ("step", step), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    if floor is not None and not 0 <= floor < 0.75:
        raise ValueError(f"floor={floor!r} must be in [0, 0.75): the raw leakage of a disentangled generator")
    times = torch.arange(frames, dtype=torch.float32) * step
    codes = generator.sample(2 * videos, seed=seed, frames=int(times[-1]) + 1)
    changes = (*FACTORS, "all")
    # Per video, per (latent changed, factor read): the sum and count of the measured distances.
    sums = np.zeros((videos, len(changes), len(FACTORS)))
    counts = np.zeros((videos, len(changes), len(FACTORS)))
    with tqdm(total=videos, desc="leakage", unit="video", disable=not progress) as bar:
        for start in range(0, videos, batch):
            stop = min(start + batch, videos)
            variants = _variants(codes[start:stop], codes[videos + start : videos + stop])
            measured = {}
            for name, variant in variants.items():
                video = generator.render(variant, times)  # [n, T, 3, R, R]
                measured[name] = readout(video.flatten(0, 1))
            for i, f in enumerate(changes):
                for j, g in enumerate(FACTORS):
                    d = (
                        readout.distance(g, measured["base"][g], measured[f][g])
                        .double()
                        .reshape(stop - start, -1)
                    )
                    ok = ~torch.isnan(d)
                    sums[start:stop, i, j] = torch.where(ok, d, 0).sum(dim=1).numpy()
                    counts[start:stop, i, j] = ok.sum(dim=1).numpy()
            bar.update(stop - start)
    scores = _scores(sums.sum(0), counts.sum(0), floor)
    result = {
        "leakage": scores.get("leakage"),
        "raw_leakage": scores["raw_leakage"],
        "floor": floor,
        "control": scores["control"],
        "control_per_factor": dict(zip(FACTORS, (_plain(v) for v in np.diag(scores["effect"])), strict=True)),
        "factors": list(FACTORS),
        "effect": _nested(scores["effect"]),
        "share": _nested(scores["share"]),
        "moved": _nested(scores["moved"]),
        "reference": [_plain(v) for v in scores["reference"]],
        "measured": (counts.sum(0) / (videos * frames)).min(axis=0).tolist(),
        "interval": _bootstrap(sums, counts, floor, bootstrap, seed),
        "videos": videos,
        "frames": frames,
    }
    return result


def _scores(sums: np.ndarray, counts: np.ndarray, floor: float | None) -> dict:
    """Matrices and scalars from the pooled sums and counts [5, 4] (rows: FACTORS, then 'all')."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
        reference, moved = mean[-1], mean[:-1]
        effect = moved / reference[None, :]
        share = effect / effect.sum(axis=1, keepdims=True)
    raw = float(1 - np.mean(np.diag(share)))
    out = {
        "raw_leakage": raw,
        "control": float(np.mean(np.diag(effect))),
        "effect": effect,
        "share": share,
        "moved": moved,
        "reference": reference,
    }
    if floor is not None:
        out["leakage"] = (raw - floor) / (0.75 - floor)
    return out


def _bootstrap(sums: np.ndarray, counts: np.ndarray, floor: float | None, resamples: int, seed: int) -> dict:
    """95% percentile intervals of the scalars over videos drawn with replacement ([V, 5, 4] inputs)."""
    if resamples < 1:
        return {}
    videos = len(sums)
    rng = np.random.default_rng([seed, 95])
    draws = rng.integers(videos, size=(resamples, videos))
    weights = np.stack([np.bincount(row, minlength=videos) for row in draws]).astype(np.float64)
    pooled_sums = (weights @ sums.reshape(videos, -1)).reshape(resamples, *sums.shape[1:])
    pooled_counts = (weights @ counts.reshape(videos, -1)).reshape(resamples, *counts.shape[1:])
    names = (*(("leakage",) if floor is not None else ()), "raw_leakage", "control")
    values = {name: [] for name in names}
    for s, c in zip(pooled_sums, pooled_counts, strict=True):
        scores = _scores(s, c, floor)
        for name in names:
            values[name].append(scores[name])
    return {
        name: [_plain(v) for v in np.nanpercentile(np.array(v), [2.5, 97.5])]
        if not np.isnan(v).all()
        else None
        for name, v in values.items()
    }


def _plain(value: float) -> float | None:
    """A float for JSON: NaN becomes None (JSON has no NaN)."""
    return None if math.isnan(value) else float(value)


def _nested(matrix: np.ndarray) -> list[list[float | None]]:
    return [[_plain(v) for v in row] for row in matrix]


def leakage_caption(result: Mapping) -> str:
    """The scores of a leakage result in words: the leakage, and the raw value named as raw."""
    control = f"control {result['control']:.2f}"
    raw = f"raw leakage {result['raw_leakage']:.3f}"
    if result.get("leakage") is None:
        return f"{raw} (0: diagonal, 0.75: no separation; no floor to normalise by), {control}"
    return (
        f"leakage {result['leakage']:.3f} (0: as separate as the renderer, 1: none), {control}\n"
        f"{raw}, of the renderer itself {result['floor']:.3f}"
    )


def plot_leakage(result: Mapping, path: str | Path, title: str = "") -> Path:
    """Draw result['share'] as a heatmap PNG at `path`: rows the latent changed, columns the factor read."""
    import matplotlib  # noqa: PLC0415 - plotting only here

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # noqa: PLC0415

    factors = list(result.get("factors", FACTORS))
    share = np.array([[np.nan if v is None else v for v in row] for row in result["share"]], dtype=float)
    effect = np.array([[np.nan if v is None else v for v in row] for row in result["effect"]], dtype=float)
    figure, axes = plt.subplots(figsize=(6.4, 4.6), dpi=110)
    image = axes.imshow(share, vmin=0, vmax=1, cmap="viridis")
    for i in range(len(factors)):
        for j in range(len(factors)):
            value = share[i, j]
            text = "n/a" if np.isnan(value) else f"{value:.2f}\n({effect[i, j]:.2f})"
            axes.text(
                j, i, text, ha="center", va="center", fontsize=8, color="white" if value < 0.6 else "black"
            )
    axes.set_xticks(range(len(factors)), factors)
    axes.set_yticks(range(len(factors)), factors)
    axes.set_xlabel("factor measured")
    axes.set_ylabel("latent changed")
    scores = leakage_caption(result)
    axes.set_title(f"{title}\n{scores}" if title else scores, fontsize=9)
    figure.colorbar(image, ax=axes, label="share of the change (effect in brackets)")
    figure.tight_layout()
    buffer = _png(figure)
    plt.close(figure)
    return write_atomically(Path(path), buffer)


def _png(figure) -> bytes:
    import io  # noqa: PLC0415

    stream = io.BytesIO()
    figure.savefig(stream, format="png")
    return stream.getvalue()
