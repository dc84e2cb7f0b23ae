"""The four factor vectors of a synthetic video: their names, random sampling, and checks.

- identity [20], constant within a video, every value in [0, 1]: head and jaw shape, skin, hair,
  eyes, brows, nose, mouth, ears and shirt colour.
- pose [T, 3] in radians: yaw > 0 turns the nose to the image's right, pitch > 0 lifts it, roll > 0
  tilts the head counter-clockwise on screen.
- lighting [T, 5]: azimuth (radians, > 0: light from the image's right), elevation (radians, > 0:
  from above), intensity of the key light, ambient level, warmth (-1 bluish ... +1 orange).
- background [10], constant within a video: two sRGB colours in [0, 1], the pattern's angle (radians
  from the image's x axis) and frequency (cycles across the frame), and the weights of stripes and
  checker over a gradient.

Pose and lighting are sums of a few slow random sinusoids, so they move smoothly.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math

import numpy as np

IDENTITY_NAMES = [
    "head_width",
    "head_height",
    "jaw_width",
    "skin_tone",
    "skin_warmth",
    "hair_darkness",
    "hair_redness",
    "hair_length",
    "hair_volume",
    "hairline",
    "eye_size",
    "eye_spacing",
    "iris_hue",
    "brow_thickness",
    "nose_length",
    "nose_width",
    "mouth_width",
    "lip_redness",
    "ear_size",
    "shirt_hue",
]
FACTOR_NAMES: dict[str, list[str]] = {
    "identity": IDENTITY_NAMES,
    "pose": ["yaw", "pitch", "roll"],
    "lighting": ["azimuth", "elevation", "intensity", "ambient", "warmth"],
    "background": [
        "color1_r",
        "color1_g",
        "color1_b",
        "color2_r",
        "color2_g",
        "color2_b",
        "angle",
        "frequency",
        "stripes",
        "checker",
    ],
}

# (low, high, fastest sinusoid in Hz) of every per-frame factor: the range it sweeps and how fast.
MOTION = {
    "yaw": (-0.8, 0.8, 0.5),
    "pitch": (-0.35, 0.35, 0.5),
    "roll": (-0.25, 0.25, 0.4),
    "azimuth": (-1.2, 1.2, 0.3),
    "elevation": (-0.3, 0.9, 0.3),
    "intensity": (0.7, 1.4, 0.3),
    "ambient": (0.15, 0.45, 0.3),
    "warmth": (-1.0, 1.0, 0.2),
}
_SINUSOIDS = 3
_SLOWEST_HZ = 0.05


@dataclasses.dataclass
class VideoFactors:
    """One video's ground truth: identity [Di] and background [Db] constant, pose [T, 3], lighting [T, Dl]."""

    identity: np.ndarray
    background: np.ndarray
    pose: np.ndarray
    lighting: np.ndarray
    fps: float

    @property
    def frames(self) -> int:
        return len(self.pose)


def _trajectory(rng: np.random.Generator, times: np.ndarray, low: float, high: float, max_hz: float):
    """A smooth random path [T] inside [low, high]: a random centre plus a normalised sum of sinusoids."""
    hz = rng.uniform(_SLOWEST_HZ, max_hz, _SINUSOIDS)
    phase = rng.uniform(0, 2 * math.pi, _SINUSOIDS)
    weight = rng.uniform(0.2, 1.0, _SINUSOIDS)
    wave = (weight * np.sin(2 * math.pi * hz * times[:, None] + phase)).sum(-1) / weight.sum()
    centre = rng.uniform(0, 1)
    swing = min(centre, 1 - centre) * rng.uniform(0.4, 1.0)
    return low + (high - low) * (centre + swing * wave)


def _sample_background(rng: np.random.Generator) -> np.ndarray:
    """A background vector [10]: two related colours, a gradient, stripes or checker."""
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.05, 0.6), rng.uniform(0.2, 0.95)
    first = colorsys.hsv_to_rgb(hue, saturation, value)
    second = colorsys.hsv_to_rgb(
        (hue + rng.uniform(-0.15, 0.15)) % 1,
        np.clip(saturation + rng.uniform(-0.2, 0.2), 0, 1),
        np.clip(value + rng.choice([-1, 1]) * rng.uniform(0.1, 0.45), 0.05, 1),
    )
    kind = rng.integers(3)  # gradient, stripes, checker
    strength = rng.uniform(0.5, 1.0)
    pattern = [rng.uniform(0, math.pi), rng.uniform(1.5, 5.0), strength * (kind == 1), strength * (kind == 2)]
    return np.array([*first, *second, *pattern], dtype=np.float32)


def sample_factors(rng, frames: int, fps: float = 25.0) -> VideoFactors:
    """Random factors of one video of `frames` frames; `rng` is a numpy Generator or a seed."""
    if frames < 1 or fps <= 0:
        raise ValueError(f"frames={frames} must be at least 1 and fps={fps} positive")
    rng = np.random.default_rng(rng)
    identity = rng.uniform(0, 1, len(IDENTITY_NAMES)).astype(np.float32)
    background = _sample_background(rng)
    times = np.arange(frames) / fps
    paths = {name: _trajectory(rng, times, *spec) for name, spec in MOTION.items()}
    pose = np.stack([paths[n] for n in FACTOR_NAMES["pose"]], -1).astype(np.float32)
    lighting = np.stack([paths[n] for n in FACTOR_NAMES["lighting"]], -1).astype(np.float32)
    return VideoFactors(identity, background, pose, lighting, float(fps))


def check_factor(name: str, value, shape: tuple) -> np.ndarray:
    """A factor as float32 of `shape` (None: any length), or a ValueError naming it and the expected shape."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, array.shape, strict=False)
    ):
        expected = "[" + ", ".join("T" if s is None else str(s) for s in shape) + "]"
        raise ValueError(
            f"{name} has shape {list(array.shape)}, expected {expected} "
            f"({', '.join(FACTOR_NAMES[name])}); build factors with sample_factors()"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values: {array.tolist()}")
    return array


def check_identity(identity) -> np.ndarray:
    """An identity vector as float32 [20] in [0, 1], or a ValueError naming the values out of range."""
    identity = check_factor("identity", identity, (len(IDENTITY_NAMES),))
    bad = [f"{n}={v:.3g}" for n, v in zip(IDENTITY_NAMES, identity, strict=True) if not 0 <= v <= 1]
    if bad:
        raise ValueError(f"identity values must be in [0, 1]; got {', '.join(bad)}")
    return identity


def check_background(background) -> np.ndarray:
    """A background vector as float32 [10], or a ValueError unless stripes, checker are weights (sum <= 1)."""
    background = check_factor("background", background, (len(FACTOR_NAMES["background"]),))
    stripes, checker = background[8:10]
    if min(stripes, checker) < 0 or stripes + checker > 1:
        raise ValueError(
            f"background stripes={stripes:.3g} and checker={checker:.3g} must be >= 0 with a sum <= 1 "
            "(they are weights over the gradient)"
        )
    return background
