"""Loss terms: the logistic GAN loss, R1, and the pair terms computed in a teacher's space."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stylevid.config import FACTORS


def gan_generator(scores: dict[str, torch.Tensor | None]) -> torch.Tensor:
    """Non-saturating loss for fake clips, per clip [N]: softplus(-D) on the video and frame scores."""
    loss = F.softplus(-scores["video"])
    if scores.get("frames") is not None:
        loss = loss + F.softplus(-scores["frames"]).mean(dim=1)
    return loss


def gan_discriminator(scores: dict[str, torch.Tensor | None], real: bool) -> torch.Tensor:
    """Logistic loss per clip [N]: push real scores up, fake scores down."""
    sign = -1 if real else 1
    loss = F.softplus(sign * scores["video"])
    if scores.get("frames") is not None:
        loss = loss + F.softplus(sign * scores["frames"]).mean(dim=1)
    return loss


def r1_penalty(scores: dict[str, torch.Tensor | None], frames: torch.Tensor) -> torch.Tensor:
    """R1 of each head on the real frames [N, K, 3, H, W], per clip [N] (built with create_graph).

    The video head's squared gradient norm plus the per-frame head's, averaged over the K frames as
    its loss is. Taking the gradient of the sum of both heads' scores instead would let them cancel
    and weight the frame head K times more than its loss does.
    """
    heads = [scores["video"].sum()]
    if scores.get("frames") is not None:
        heads.append(scores["frames"].sum())
    penalty = 0
    for i, total in enumerate(heads):
        (grad,) = torch.autograd.grad(total, frames, create_graph=True)
        norm = grad.square().flatten(1).sum(dim=1)
        # Frame k's score depends on frame k alone, so this norm is the sum of the K per-frame R1s.
        penalty = penalty + (norm if i == 0 else norm / frames.shape[1])
    return penalty


def pair_distances(
    teacher, base: dict[str, torch.Tensor], variant: dict[str, torch.Tensor], spread: dict[str, float]
) -> dict[str, torch.Tensor]:
    """Per factor, per pair [P]: the teacher's distance between base and variant frames, in spreads.

    base/variant: readings {factor: [P, K, D]} of the pairs' K frames at the same times; the distance
    is averaged over the frames the teacher measured in both (NaN when none).
    """
    out = {}
    for f in FACTORS:
        p, k = base[f].shape[:2]
        d = teacher.distance(f, base[f].flatten(0, 1), variant[f].flatten(0, 1)).reshape(p, k)
        # A masked mean, not nanmean: its gradient for a pair with no measured frame is 0/0 = NaN.
        measured = ~d.isnan()
        count = measured.sum(dim=1)
        mean = _nan_to_zero(d).sum(dim=1) / count.clamp_min(1)
        out[f] = torch.where(count > 0, mean, torch.full_like(mean, float("nan"))) / spread[f]
    return out


def teacher_keep(distances: dict[str, torch.Tensor], changed: list[str]) -> torch.Tensor:
    """Per pair [P]: mean squared movement (in spreads) of the factors pair i did NOT change."""
    rows = []
    for i, factor in enumerate(changed):
        kept = torch.stack([distances[g][i] for g in FACTORS if g != factor])
        rows.append(_nan_to_zero(kept).square().sum() / (~kept.isnan()).sum().clamp_min(1))
    return torch.stack(rows)


def teacher_move(distances: dict[str, torch.Tensor], changed: list[str], margin: float) -> torch.Tensor:
    """Per pair [P]: squared shortfall of the changed factor's movement below `margin` spreads."""
    moved = torch.stack([distances[f][i] for i, f in enumerate(changed)])
    # Unmeasured (NaN) counts as moved far enough: loss 0, and no NaN gradient through the square.
    moved = torch.where(moved.isnan(), torch.full_like(moved, margin), moved)
    return (margin - moved).clamp_min(0).square()


def teacher_contrast(
    embeddings: torch.Tensor, keys: torch.Tensor, spread: float, temperature: float = 0.25
) -> torch.Tensor:
    """Supervised InfoNCE in the teacher's identity space, per clip [N] of the whole batch.

    embeddings [N, D]: each clip's identity reading (mean over its frames); keys [N]: which identity
    each clip shows. A clip's positives are the other clips with its key (the same identity code
    under another pose, light or background); every other clip is a negative (those of a pair that
    changed identity differ from their base in identity only). Logits: -squared distance /
    (spread² * temperature). A clip without a positive or without a measured identity has loss 0.
    """
    valid = ~embeddings.isnan().any(dim=1)
    e = torch.where(valid[:, None], embeddings, torch.zeros_like(embeddings))
    logits = -(e[:, None] - e[None, :]).square().sum(dim=-1) / (spread**2 * temperature)
    eye = torch.eye(len(e), dtype=torch.bool, device=e.device)
    mask = ~eye & valid[None, :] & valid[:, None]
    logits = logits.masked_fill(~mask, float("-inf"))
    positive = (keys[:, None] == keys[None, :]) & mask
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    count = positive.sum(dim=1)
    total = -torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))


def _nan_to_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x.isnan(), torch.zeros_like(x), x)
