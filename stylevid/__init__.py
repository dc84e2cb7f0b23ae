"""stylevid: disentangled face-video GANs (identity, pose, lighting, background)."""

__version__ = "0.1.0"
