"""Pair batches: clips side by side that share every latent but one, for the teacher-space terms.

A batch of 2P clips holds P pairs, interleaved: clip 2i is sample i (the base) and clip 2i + 1 is
the base with one factor's latent taken from sample P + i, rendered at the same times. Pair i
changes FACTORS[(step + i) % 4], so every factor is changed in every batch of at least 4 pairs.
The discriminator sees the bases first and the variants after them (`discriminator_order`), so
that its minibatch-std groups hold unrelated clips, as a real batch does.
"""

from __future__ import annotations

import torch

from stylevid.codes import Codes
from stylevid.config import FACTORS


def changed_factors(pairs: int, step: int) -> list[str]:
    """The factor each of `pairs` pairs changes: every factor in turn, starting with step's."""
    return [FACTORS[(step + i) % len(FACTORS)] for i in range(pairs)]


def paired_codes(codes: Codes, changed: list[str]) -> Codes:
    """2P independent samples -> the paired batch [2P] of the module doc (`changed`: P factors)."""
    pairs = len(changed)
    if len(codes) != 2 * pairs:
        raise ValueError(f"{len(codes)} codes for {pairs} pairs; pass 2 * pairs samples")
    base, donor = codes[:pairs], codes[pairs:]
    variants = Codes.cat([base[i : i + 1].with_factor(f, donor[i : i + 1]) for i, f in enumerate(changed)])
    order = torch.stack([torch.arange(pairs), torch.arange(pairs) + pairs], dim=1).flatten()
    return Codes.cat([base, variants])[order.tolist()]


def paired_times(times):
    """Clip times [2P, K] with each variant's (odd rows) set to its base's (even rows); a copy."""
    times = times.copy()
    times[1::2] = times[0::2]
    return times


def discriminator_order(clips: int) -> list[int]:
    """The order [clips] in which a paired batch goes to the discriminator: bases, then variants."""
    return [*range(0, clips, 2), *range(1, clips, 2)]


def identity_keys(changed: list[str]) -> torch.Tensor:
    """[2P] the identity each clip shows: pair i's base and variant share key i unless pair i changes it."""
    pairs = len(changed)
    keys = torch.arange(pairs).repeat_interleave(2)
    for i, factor in enumerate(changed):
        if factor == "identity":
            keys[2 * i + 1] = pairs + i
    return keys
