"""The encoder's training configuration (`stylevid train-encoder`), stored in its snapshots."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from stylevid.config import from_settings
from stylevid.encoder.config import EncoderConfig


@dataclass
class EncoderLossWeights:
    """Weights of the encoder's terms; 0 switches one off.

    On the generator's samples (codes known): code regression (in spreads of each factor), L2 and
    LPIPS of the re-render, supervised contrast of identity tokens, the spread of one identity's
    codes over clips, and the swap (identity of clip A with the scene of clip B renders B).
    On real frames: L2 and LPIPS of the re-render, the identity reading of a teacher, and the codes
    kept within the generator's latent distribution.
    """

    code: float = 1.0
    l2: float = 1.0
    lpips: float = 0.8
    contrast: float = 0.1
    spread: float = 1.0
    swap: float = 0.5
    real: float = 0.5  # the real-frame terms together
    real_identity: float = 0.5
    latent: float = 0.1


@dataclass
class EncoderTrainConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    loss: EncoderLossWeights = field(default_factory=EncoderLossWeights)
    identities: int = 6  # people per step, each seen in two clips
    references: int = 3  # frames per clip
    real_clips: int = 4  # dataset clips per step (with --data)
    lr: float = 1e-3
    steps: int = 2000
    tick_steps: int = 50
    snapshot_ticks: int = 4
    seed: int = 0
    lpips_net: str = "alex"  # the loss's LPIPS; the metrics report LPIPS-VGG
    teacher: str = "synthetic"  # the identity reader of the real-frame term: 'synthetic', 'faces', 'none'

    def __post_init__(self) -> None:
        for name in ("identities", "references", "steps", "tick_steps", "snapshot_ticks"):
            if getattr(self, name) < 1:
                raise ValueError(f"train-encoder {name}={getattr(self, name)} must be at least 1")
        if self.identities < 2:
            raise ValueError(f"identities={self.identities}: the contrast needs at least 2 people per step")
        if self.lpips_net not in ("alex", "vgg"):
            raise ValueError(f"lpips_net={self.lpips_net!r} must be 'alex' or 'vgg'")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EncoderTrainConfig:
        """Inverse of to_dict; an unknown name or a value of the wrong type is a ValueError naming it."""
        if not isinstance(data, dict):
            raise ValueError(f"encoder training is {str(data)[:80]!r}; expected a JSON object of settings")
        parts = {
            "encoder": EncoderConfig.from_dict(data.get("encoder", {})),
            "loss": from_settings(EncoderLossWeights, data.get("loss", {}), "encoder training.loss"),
        }
        return from_settings(cls, {**data, **parts}, "encoder training")
