"""Shared fixtures: a tiny model configuration that runs in milliseconds on a CPU."""

import pytest
import torch

from stylevid.api import VideoGenerator
from stylevid.config import DiscriminatorConfig, GeneratorConfig, ModelConfig
from stylevid.networks import Generator


def tiny_config(resolution: int = 16) -> ModelConfig:
    """A 16² model with a few channels: the architecture of the presets, small enough for tests."""
    return ModelConfig(
        GeneratorConfig(
            resolution=resolution,
            z_dim=16,
            motion_dim=8,
            w_dim=32,
            mapping_layers=2,
            motion_layers=2,
            anchor_spacing=4.0,
            time_freqs=4,
            channel_base=128,
            channel_max=16,
        ),
        DiscriminatorConfig(
            resolution=resolution, fuse_resolution=8, channel_base=128, channel_max=16, mbstd_group=2
        ),
    )


@pytest.fixture
def config() -> ModelConfig:
    return tiny_config()


@pytest.fixture
def generator(config) -> Generator:
    torch.manual_seed(0)
    return Generator(config.generator)


@pytest.fixture
def video_generator(generator, config) -> VideoGenerator:
    return VideoGenerator(generator, config)
