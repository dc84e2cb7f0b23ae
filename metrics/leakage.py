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
- ``leakage`` = 1 - mean diagonal of share, the scalar: 0 for a diagonal matrix, 0.75 when a change of
  any latent spreads evenly over the four factors. Read it with ``control`` (mean diagonal of effect):
  a generator that ignores its latents leaks nothing and controls nothing.

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
from stylevid.data.synthetic import FACTOR_NAMES
from stylevid.metrics.probes import FactorProbe, load_probes


class Readout(Protocol):
    """Measures the four factors in frames: features per factor, and a distance between two measurements."""

    weights_sha256: dict[str, str]

    def __call__(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Frames [N, 3, H, W] in [-1, 1] -> {factor: features [N, D]} (NaN where unmeasurable)."""

    def distance(self, factor: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distances [N] between features [N, D]; NaN where either is unmeasurable."""


def rms_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Root mean square of a - b over the dimensions both measure, [N, D] x [N, D] -> [N] (NaN if none)."""
    squared = (a - b).square()
    return squared.nanmean(dim=1).sqrt()


class ProbeReadout:
    """The factor probes as a readout: standardised predictions compared by root mean square.

    Only the values the probe reads (validation R² >= min_r2, as recorded when it was trained) count:
    the others are near-constant guesses whose noise would only dilute a factor's movement.
    """

    def __init__(self, probe: FactorProbe | None = None, min_r2: float = 0.5, batch: int = 256):
        self.probe = probe if probe is not None else load_probes()
        self.batch = batch
        self.weights_sha256 = {"factor-probes": getattr(self.probe, "weights_sha256", "unsaved")}
        r2 = getattr(self.probe, "validation_r2", {}).get("values", {})
        self.columns = {}
        for factor, names in FACTOR_NAMES.items():
            keep = [i for i, name in enumerate(names) if r2.get(f"{factor}.{name}", 1.0) >= min_r2]
            if not keep:
                raise ValueError(
                    f"the probe reads no {factor} value with validation R² >= {min_r2}: lower min_r2, or"
                    " retrain it (stylevid train-probes)"
                )
            self.columns[factor] = keep

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
) -> dict:
    """The leakage of `generator` measured by `readout` (see the module doc): matrices, scalars, counts.

    Frames: times 0, step, 2 step, ... (frames of them) of each video; `batch` videos are rendered
    at a time. Returns plain lists and floats: {leakage, control, effect, share, moved, reference,
    measured, factors, videos, frames}, `moved[f][g]` being the raw mean distance and `reference[g]`
    that of a whole new sample; `measured[g]` the fraction of frame pairs readout g could measure.
    """
    for name, value in (("videos", videos), ("frames", frames), ("step", step), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    times = torch.arange(frames, dtype=torch.float32) * step
    codes = generator.sample(2 * videos, seed=seed, frames=int(times[-1]) + 1)
    sums = {(f, g): 0.0 for f in (*FACTORS, "all") for g in FACTORS}
    counts = {(f, g): 0 for f in (*FACTORS, "all") for g in FACTORS}
    total = {(f, g): 0 for f in (*FACTORS, "all") for g in FACTORS}
    with tqdm(total=videos, desc="leakage", unit="video", disable=not progress) as bar:
        for start in range(0, videos, batch):
            stop = min(start + batch, videos)
            variants = _variants(codes[start:stop], codes[videos + start : videos + stop])
            measured = {}
            for name, variant in variants.items():
                video = generator.render(variant, times)  # [n, T, 3, R, R]
                measured[name] = readout(video.flatten(0, 1))
            for f in (*FACTORS, "all"):
                for g in FACTORS:
                    d = readout.distance(g, measured["base"][g], measured[f][g])
                    ok = ~torch.isnan(d)
                    sums[f, g] += float(d[ok].double().sum())
                    counts[f, g] += int(ok.sum())
                    total[f, g] += d.numel()
            bar.update(stop - start)
    mean = {key: sums[key] / counts[key] if counts[key] else math.nan for key in sums}
    reference = np.array([mean["all", g] for g in FACTORS])
    moved = np.array([[mean[f, g] for g in FACTORS] for f in FACTORS])
    with np.errstate(invalid="ignore", divide="ignore"):
        effect = moved / reference[None, :]
        share = effect / effect.sum(axis=1, keepdims=True)
    return {
        "leakage": float(1 - np.mean(np.diag(share))),
        "control": float(np.mean(np.diag(effect))),
        "factors": list(FACTORS),
        "effect": _nested(effect),
        "share": _nested(share),
        "moved": _nested(moved),
        "reference": [_plain(v) for v in reference],
        "measured": [min(counts[f, g] / total[f, g] for f in (*FACTORS, "all")) for g in FACTORS],
        "videos": videos,
        "frames": frames,
    }


def _plain(value: float) -> float | None:
    """A float for JSON: NaN becomes None (JSON has no NaN)."""
    return None if math.isnan(value) else float(value)


def _nested(matrix: np.ndarray) -> list[list[float | None]]:
    return [[_plain(v) for v in row] for row in matrix]


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
    scores = f"leakage {result['leakage']:.3f} (0: diagonal), control {result['control']:.2f}"
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
