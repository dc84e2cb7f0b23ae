"""The per-frame backbone: a residual CNN whose 16², 8² and 4² levels are pooled into one feature.

Plain PyTorch (no custom ops) so it runs on any device; no batch statistics, so a frame's feature
never depends on the other frames of the batch (fusion must not depend on how references are batched).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stylevid.encoder.config import EncoderConfig
from stylevid.shapes import assert_shape

INPUT_CHANNELS = 6  # the frame and the current reconstruction of it, side by side in channels
PYRAMID = (16, 8, 4)  # the levels whose features are pooled (4² also kept whole: where things are)


class DownBlock(nn.Module):
    """Halve the resolution: conv stride 2, conv, with a 1x1 residual path."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.leaky_relu(self.conv0(x), 0.2))
        return F.leaky_relu((y + self.skip(x)) / math.sqrt(2), 0.2)


class FeaturePyramid(nn.Module):
    """frames + reconstructions [B, 6, R, R] in [-1, 1] -> features [B, token_dim]."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = c = config
        self.stem = nn.Conv2d(INPUT_CHANNELS, c.channels(c.resolution), 3, padding=1)
        blocks, res = [], c.resolution
        while res > 4:
            blocks.append(DownBlock(c.channels(res), c.channels(res // 2)))
            res //= 2
        self.blocks = nn.ModuleList(blocks)
        pooled = sum(c.channels(r) for r in PYRAMID if r < c.resolution)
        self.head = nn.Sequential(
            nn.Linear(pooled + 16 * c.channels(4), c.token_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(c.token_dim, c.token_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.config.resolution
        assert_shape(x, [None, INPUT_CHANNELS, r, r], "encoder input")
        x = F.leaky_relu(self.stem(x), 0.2)
        levels = []
        for block in self.blocks:
            x = block(x)
            if x.shape[-1] in PYRAMID:
                levels.append(x.mean(dim=(2, 3)))
        return self.head(torch.cat([*levels, x.flatten(1)], dim=1))
