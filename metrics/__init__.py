"""Metrics: FVD, identity, disentanglement and inversion scores (docs/metrics.md)."""
