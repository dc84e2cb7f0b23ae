"""When a clip's K frames are taken: one sampler for real clips (the loader) and fake ones (the trainer).

``random`` (StyleGAN-V style): a span s uniform in [K-1, min(T-1, max_gap)], a first frame t1 uniform
in [0, T-1-s], then t1 and t1+s with K-2 distinct frames between them, so gaps are integers >= 1 adding
up to at most max_gap. ``uniform``: K evenly spaced frames over the first min(T-1, max_gap) + 1 frames,
from frame 0.

Real and fake clips go through the same function (T is a real video's length, or for fake clips the
length the generator is trained over), so the discriminator, which is conditioned on the gaps, cannot
tell real from fake by them. Draws come from a NumPy generator: the times are host-side bookkeeping,
and no tensor is read back from a device to make them.
"""

from __future__ import annotations

import numpy as np

SAMPLINGS = ("random", "uniform")


def sample_times(
    length: int, frames_per_clip: int, max_gap: int, sampling: str, rng: np.random.Generator
) -> np.ndarray:
    """int64 [K] strictly increasing frame indices in [0, length), spanning at most max_gap (module doc)."""
    k = frames_per_clip
    if length < k:
        raise ValueError(f"a video of {length} frames cannot hold a clip of {k} distinct frames")
    longest = min(length - 1, max_gap)
    if k == 1:
        start = 0 if sampling == "uniform" else int(rng.integers(length))
        return np.array([start], dtype=np.int64)
    if sampling == "uniform":
        # Integer rounding half up: spacing >= 1, so no two times coincide.
        return (np.arange(k, dtype=np.int64) * longest + (k - 1) // 2) // (k - 1)
    span = int(rng.integers(k - 1, longest + 1))
    start = int(rng.integers(length - span))
    inner = np.sort(rng.permutation(span - 1)[: k - 2] + 1)
    return start + np.concatenate([[0], inner, [span]]).astype(np.int64)


def sample_clip_batch(
    n: int, length: int, frames_per_clip: int, max_gap: int, rng: np.random.Generator
) -> np.ndarray:
    """int64 [n, K]: n clips' times drawn by sample_times('random') from videos of `length` frames."""
    return np.stack([sample_times(length, frames_per_clip, max_gap, "random", rng) for _ in range(n)])
