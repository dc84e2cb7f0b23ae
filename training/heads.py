"""The factor head: reads each factor's code back from generated frames (InfoGAN's Q network)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from stylevid.config import FACTORS
from stylevid.networks.discriminator import DiscriminatorBlock
from stylevid.networks.layers import Conv2dLayer, FullyConnected
from stylevid.shapes import assert_shape


class FactorHead(nn.Module):
    """Frames [N, K, 3, R, R] -> per-factor predictions of the W codes and an identity embedding.

    `channels(resolution)` sizes the layers (the trainer passes the discriminator's).

    identity and background are predicted from the mean over the K frames ([N, w_dim]); pose
    and lighting per frame ([N, K, w_dim]); `embedding` is the per-frame identity embedding
    [N, K, embed_dim], unit length, for the contrastive identity term.
    """

    def __init__(self, resolution: int, w_dim: int, channels: Callable[[int], int], embed_dim: int = 64):
        super().__init__()
        self.resolution = resolution
        self.from_rgb = Conv2dLayer(3, channels(resolution), 1)
        sizes = [2**i for i in range(int(math.log2(resolution)), 2, -1)]
        self.blocks = nn.Sequential(*[DiscriminatorBlock(channels(r), channels(r // 2)) for r in sizes])
        self.features = FullyConnected(channels(4) * 16, 4 * w_dim, activation="lrelu")
        self.heads = nn.ModuleDict({f: FullyConnected(4 * w_dim, w_dim) for f in FACTORS})
        self.embed = FullyConnected(4 * w_dim, embed_dim)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        assert_shape(frames, [None, None, 3, self.resolution, self.resolution], "factor head frames")
        n, k = frames.shape[:2]
        h = self.features(self.blocks(self.from_rgb(frames.flatten(0, 1))).flatten(1)).reshape(n, k, -1)
        pooled = h.mean(dim=1)
        return {
            "identity": self.heads["identity"](pooled),
            "background": self.heads["background"](pooled),
            "pose": self.heads["pose"](h),
            "lighting": self.heads["lighting"](h),
            "embedding": nn.functional.normalize(self.embed(h), dim=-1),
        }
