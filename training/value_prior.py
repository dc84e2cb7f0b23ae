"""The face layer's pose and light values held to the data's distribution of them.

The heads that turn pose and lighting codes into degrees and light parameters are bounded, but within
their bounds G is free to choose where its values lie, and it chooses what is easiest rather than what
the data shows: the built-in model trained without this term lit every face with the dimmest key light
the bounds allow (intensity 0.52 against the data's 0.7-1.4), a warm light always on (warmth 0.86
against the data's mean 0) and the ambient at its top, and painted the brightness and tint into the
albedo, so the lighting code had little left to do (lighting control 0.27); its heads turned over 0.63
of the data's yaw spread and looked 11 degrees up. This term asks, on a batch of codes of its own, that
each value's marginal distribution over videos and times be the data's: the squared 1-D Wasserstein
distance between the two (the mean squared difference of the sorted values and the data's quantiles), in
spreads of the data's values. At synth64's weight (1) it holds the light and centres the pose, but not
the yaw's spread: the discriminator narrows it after 10 kimg (docs/results.md). GeneratorConfig.pose_marginal
fixes the pose's distribution by construction instead (off in synth64: measured, it did not help alone).

For the built-in data the distribution is the synthetic renderer's own family, simulated with
`sample_factors`: a prior the data's maker states, not a reading of any frame. Real footage has no such
statement, so the term is for the renderer's light only.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from stylevid.data.synthetic.factors import FACTOR_NAMES, MOTION, sample_factors
from stylevid.networks.face3d import ANGLE_NAMES

QUANTILES = 1024  # of the data's distribution; the batch of codes the term draws has this many values
PRIOR_VIDEOS = 64  # the term's batch: this many videos of the generator's ...
PRIOR_TIMES = 16  # ... at this many random times each


@functools.lru_cache(maxsize=4)
def renderer_quantiles(count: int = QUANTILES, videos: int = 4096, seed: int = 0) -> dict[str, torch.Tensor]:
    """The synthetic renderer's pose and light values at `count` evenly spaced quantiles, name -> [count],
    in the face layer's units (degrees for angles), from `videos` simulated videos at 16 times each."""
    rng = np.random.default_rng(seed)
    rows = {"pose": [], "lighting": []}
    for _ in range(videos):
        factors = sample_factors(rng, frames=64)
        at = rng.integers(0, 64, 16)
        rows["pose"].append(factors.pose[at])
        rows["lighting"].append(factors.lighting[at])
    levels = (np.arange(count) + 0.5) / count
    out = {}
    for kind, names in (("pose", FACTOR_NAMES["pose"]), ("lighting", FACTOR_NAMES["lighting"])):
        table = np.concatenate(rows[kind]).astype(np.float64)
        for i, name in enumerate(names):
            values = np.degrees(table[:, i]) if name in ANGLE_NAMES else table[:, i]
            out[name] = torch.tensor(np.quantile(values, levels), dtype=torch.float32)
    return out


def wasserstein_spreads(values: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Squared 1-D Wasserstein-2 distance between samples values [M] and a distribution given by its
    quantiles [Q] at (i + 0.5) / Q, in units of that distribution's variance (a scalar).

    Sorting puts each sample against the quantile of its rank: with M = Q this is the exact distance
    between the two empirical distributions; otherwise the quantiles are interpolated at the samples'
    ranks.
    """
    if values.ndim != 1 or quantiles.ndim != 1 or len(values) < 2:
        shapes = f"values {list(values.shape)} and quantiles {list(quantiles.shape)}"
        raise ValueError(f"{shapes} must be 1-D, with at least 2 values")
    ordered = values.float().sort().values
    target = quantiles.to(ordered)
    if len(target) != len(ordered):
        levels = (torch.arange(len(ordered), device=ordered.device) + 0.5) / len(ordered) * len(target) - 0.5
        low = levels.floor().clamp(0, len(target) - 1).long()
        high = (low + 1).clamp_max(len(target) - 1)
        share = (levels - low).clamp(0, 1)
        target = torch.lerp(target[low], target[high], share)
    variance = quantiles.float().var().clamp_min(1e-12)
    return (ordered - target).square().mean() / variance


class ValuePrior:
    """The term's targets for one generator: the renderer's quantiles of each value the face layer names."""

    def __init__(self, light: str, device: torch.device | str = "cpu"):
        if light != "renderer":
            raise ValueError(
                f"loss.value_prior needs the synthetic renderer's light (generator.light='renderer'), whose"
                f" values' distribution the renderer states; this generator's light is {light!r}: set"
                " loss.value_prior to 0"
            )
        self.quantiles = {k: v.to(device) for k, v in renderer_quantiles().items()}

    def __call__(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """The mean over named values of their distance to the data's (values: name -> any shape)."""
        terms = [wasserstein_spreads(values[name].reshape(-1), q) for name, q in self.quantiles.items()]
        return torch.stack(terms).mean()


def data_range(name: str) -> tuple[float, float]:
    """The renderer's [low, high] of a value in the face layer's units (for messages and tests)."""
    low, high, _ = MOTION[name]
    return (math.degrees(low), math.degrees(high)) if name in ANGLE_NAMES else (low, high)
