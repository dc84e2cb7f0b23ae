"""Tiny models and data for tests: the architecture of the presets at a size that runs in milliseconds."""

import dataclasses

import torch

from stylevid.config import DiscriminatorConfig, GeneratorConfig, ModelConfig
from stylevid.training.config import AugmentConfig, Disentangle, LossWeights, TrainConfig


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


class ClipsInMemory(torch.utils.data.Dataset):
    """Smooth random videos [V, T, 3, R, R]; items are K sorted frames like the real loader's."""

    def __init__(self, videos: int = 8, frames: int = 12, resolution: int = 16, k: int = 3, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        base = torch.rand(videos, 1, 3, 4, 4, generator=gen) * 2 - 1
        drift = torch.linspace(0, 1, frames).reshape(1, frames, 1, 1, 1)
        small = (base + 0.3 * drift).clamp(-1, 1).flatten(0, 1)
        self.videos = torch.nn.functional.interpolate(small, size=resolution, mode="bilinear").reshape(
            videos, frames, 3, resolution, resolution
        )
        self.k, self.epoch = k, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.videos.shape[0]

    def __getitem__(self, index: int) -> dict:
        return self.item(index, self.epoch)

    def item(self, index: int, epoch: int) -> dict:
        gen = torch.Generator().manual_seed(epoch * 1000 + index)
        times = torch.randperm(self.videos.shape[1], generator=gen)[: self.k].sort().values
        return {"frames": self.videos[index, times], "times": times.float(), "video": index}


def tiny_training(**overrides) -> TrainConfig:
    """A few-second training configuration on the 16² tiny model, every loss term on."""
    settings = dict(
        model=tiny_config(),
        batch=4,
        max_gap=6,
        kimg=0.016,
        tick_kimg=0.008,
        snapshot_ticks=1,
        r1_interval=2,
        # Every term runs: the teacher's pair terms from the second step (the first at half weight).
        loss=LossWeights(r1_gamma=1.0),
        disentangle=Disentangle(start_kimg=0.0, ramp_kimg=0.008),
        augment=AugmentConfig(enabled=True, interval=1),
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def tiny_encoder_config(generator, iterations: int = 2):
    """An encoder of a few channels for a tiny generator (its resolution and W size)."""
    from stylevid.encoder import EncoderConfig

    c = generator.config
    return EncoderConfig(
        resolution=c.resolution,
        w_dim=c.w_dim,
        channel_base=256,
        channel_max=32,
        token_dim=64,
        iterations=iterations,
    )


def tiny_face_training(disentangle: Disentangle, **loss) -> TrainConfig:
    """tiny_training with the face layer and the renderer's light, the given pair terms and loss weights."""
    model = tiny_config()
    generator = dataclasses.replace(model.generator, face3d=True, light="renderer", pivot=(0.0, 0.1, 0.0))
    return tiny_training(
        model=dataclasses.replace(model, generator=generator),
        loss=LossWeights(r1_gamma=1.0, **loss),
        disentangle=disentangle,
    )
