import pytest
import torch
from tiny import tiny_encoder_config

from stylevid.encoder import Encoder, VideoEncoder


@pytest.fixture
def encoder(video_generator) -> VideoEncoder:
    """An untrained tiny encoder of the tiny generator, its statistics measured on it."""
    torch.manual_seed(1)
    module = Encoder(tiny_encoder_config(video_generator.generator))
    module.fit_statistics(video_generator.generator, samples=256)
    module.config.generator_sha256 = video_generator.sha256
    return VideoEncoder(module)
