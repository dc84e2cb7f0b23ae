"""Loss terms: the logistic GAN loss, R1, and the three disentanglement signals."""

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


def identity_contrastive(
    anchors: torch.Tensor, candidates: torch.Tensor, offset: int, temperature: float = 0.1
):
    """InfoNCE per clip [n]: each clip's first-frame embedding (anchors [n, E]) must pick its own video.

    candidates [N, E] are the mean embeddings of the other frames of every clip in the global
    batch; this process's clips are rows offset .. offset + n - 1 of it.
    """
    logits = anchors @ candidates.t() / temperature
    target = torch.arange(offset, offset + anchors.shape[0], device=anchors.device)
    return F.cross_entropy(logits, target, reduction="none")


def factor_recovery(
    predicted: dict[str, torch.Tensor], codes: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Per factor, per clip [N]: squared error of the predicted W codes relative to the codes' own energy.

    The scale is each clip's own (not the batch's), so the loss of a clip does not depend on
    which other clips share its batch or process.
    """
    out = {}
    for f in FACTORS:
        target = codes[f].detach().flatten(1)
        error = (predicted[f].flatten(1) - target).square().mean(dim=1)
        out[f] = error / target.square().mean(dim=1).clamp_min(1e-8)
    return out


def swap_consistency(
    before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], swapped: str
) -> torch.Tensor:
    """Per clip [N]: how far the head's reading of the factors that were NOT swapped moved."""
    kept = [f for f in FACTORS if f != swapped]
    return sum((after[f] - before[f].detach()).square().flatten(1).mean(dim=1) for f in kept) / len(kept)
