"""Training: the trainer, losses, augmentation and distributed helpers (docs/training.md)."""
