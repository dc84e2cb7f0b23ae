"""Attention pooling over K references with a learned query, weighted by each reference's quality.

weights_k = softmax_k(q . key_k / sqrt(d) + quality_k); pooled = sum_k weights_k value_k. A sum over
the references, so the result does not depend on their order, and K = 1 gives that reference's value.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stylevid.shapes import assert_shape


class AttentionPool(nn.Module):
    """tokens [N, K, D] and quality logits [N, K] -> pooled [N, D] and the weights [N, K]."""

    def __init__(self, dim: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, k, d = tokens.shape
        assert_shape(quality, [n, k], "reference quality")
        scores = self.key(tokens) @ self.query / math.sqrt(d) + quality
        weights = torch.softmax(scores, dim=1)
        return (weights[..., None] * self.value(tokens)).sum(dim=1), weights
