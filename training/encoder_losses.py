"""The encoder's training terms (weights and meaning: encoder_config.EncoderLossWeights)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stylevid.config import FACTORS
from stylevid.encoder.model import Encoder, Styles


def code_error(encoder: Encoder, predicted: Styles, true: Styles) -> dict[str, torch.Tensor]:
    """Per factor, the squared style error relative to the factor's variance (NMSE: 1 is the mean)."""
    terms = {}
    for factor in FACTORS:
        a, b = getattr(predicted, factor), getattr(true, factor)
        if a.shape != b.shape:  # a per-frame background against a shared one
            b = b[:, None].expand_as(a)
        terms[factor] = encoder.relative_error(factor, a, b).mean()
    return terms


def identity_contrast(tokens: torch.Tensor, people: torch.Tensor, clips: torch.Tensor, temperature=0.1):
    """Supervised InfoNCE over identity tokens [M, D]: each token's positives are the tokens of the
    same person (`people` [M]) in other clips (`clips` [M]); every other token is a negative."""
    z = F.normalize(tokens.float(), dim=1)
    logits = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    positive = (people[:, None] == people[None]) & (clips[:, None] != clips[None])
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    has = positive.any(dim=1)
    mean_positive = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(1) / positive.sum(
        1
    ).clamp_min(1)
    return -(mean_positive * has).sum() / has.sum().clamp_min(1)  # rows without a positive left out


def identity_spread(encoder: Encoder, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared distance, in identity spreads, between codes [P, W] of the same people from two clips."""
    return encoder.relative_error("identity", a, b).mean()


def latent_excess(encoder: Encoder, styles: Styles) -> torch.Tensor:
    """How far codes stray beyond the generator's latent distribution: the mean squared whitened
    style above 2 (a typical sample has 1), per factor."""
    terms = []
    for factor in FACTORS:
        norm = encoder.whitened(factor, getattr(styles, factor)).square().mean(dim=-1)
        terms.append(F.relu(norm - 2).mean())
    return torch.stack(terms).mean()


def reconstruction(frames: torch.Tensor, targets: torch.Tensor, lpips) -> tuple[torch.Tensor, torch.Tensor]:
    """L2 and LPIPS between frames and targets [N, K, 3, R, R] (means over frames)."""
    a, b = frames.flatten(0, 1), targets.flatten(0, 1).to(frames.dtype)
    l2 = (a - b).square().mean()
    side = lpips.variant.min_size
    if a.shape[-1] < side:  # frames smaller than the LPIPS trunk can pool: compare them enlarged
        size = 1 << (side - 1).bit_length()
        a, b = (F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in (a, b))
    return l2, lpips(a, b).mean()
