"""The encoder's configuration, stored as JSON beside its weights (and the generator it belongs to)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from stylevid.config import channels_at, from_settings


@dataclass
class EncoderConfig:
    """A per-frame feature pyramid with heads for each factor; sizes follow the generator's."""

    resolution: int = 64
    w_dim: int = 128
    channel_base: int = 2048
    channel_max: int = 128
    token_dim: int = 256  # the per-frame feature every head reads
    iterations: int = 3  # refinement passes at inversion (each sees the input beside its reconstruction)
    generator_sha256: str = ""  # the tensor hash of the generator checkpoint the encoder inverts
    generator: str = ""  # where that generator was read from, for messages

    def __post_init__(self) -> None:
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"encoder.resolution={self.resolution} must be a power of two >= 8")
        for name in ("w_dim", "token_dim", "iterations", "channel_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"encoder.{name}={getattr(self, name)} must be at least 1")

    def channels(self, resolution: int) -> int:
        return channels_at(resolution, self.channel_base, self.channel_max)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> EncoderConfig:
        """Inverse of to_dict; an unknown name or a value of the wrong type is a ValueError naming it."""
        return from_settings(cls, data, "encoder")
