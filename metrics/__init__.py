"""Metrics: FVD, identity, disentanglement and inversion scores (see the metrics issue)."""
