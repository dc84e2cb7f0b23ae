"""The networks: generator (mappings + synthesis branches) and temporal discriminator."""

from stylevid.networks.discriminator import TemporalDiscriminator
from stylevid.networks.generator import Generator

__all__ = ["Generator", "TemporalDiscriminator"]
