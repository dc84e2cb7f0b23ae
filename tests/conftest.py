"""Shared fixtures built on the tiny model of tests/tiny.py."""

import pytest
import torch
from tiny import tiny_config

from stylevid.api import VideoGenerator
from stylevid.config import ModelConfig
from stylevid.networks import Generator


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
