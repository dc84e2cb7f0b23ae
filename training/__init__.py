"""Training: the trainer, losses, augmentation and distributed helpers (see the training issue)."""
