"""The temporal discriminator: K frames at times t1<…<tK, per-frame 2-D blocks, fused low, time-gap aware."""

from __future__ import annotations

import math

import torch
from torch import nn

from stylevid.config import DiscriminatorConfig
from stylevid.networks.layers import Conv2dLayer, FullyConnected, MinibatchStd, full_precision
from stylevid.shapes import assert_shape


class DiscriminatorBlock(nn.Module):
    """Residual block halving the resolution: [N, in, R, R] -> [N, out, R/2, R/2]."""

    def __init__(self, in_channels, out_channels, conv_clamp=None):
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, activation="linear", down=2)

    def forward(self, x):
        y = self.skip(x, gain=math.sqrt(0.5))
        return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class ScoreHead(nn.Module):
    """Minibatch std, conv, dense, projection onto a condition: [..., N, C, 4, 4] (+ [..., N, D]) -> [..., N].

    Minibatch std groups samples along N only: leading dims hold separate batches.
    """

    def __init__(self, channels, condition_dim, mbstd_group, conv_clamp=None):
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group)
        self.conv = Conv2dLayer(channels + 1, channels, 3, conv_clamp=conv_clamp)
        self.fc = FullyConnected(channels * 16, channels, activation="lrelu")
        self.out = FullyConnected(channels, 1)
        self.project = FullyConnected(condition_dim, channels) if condition_dim else None

    def forward(self, x, condition=None):
        lead = x.shape[:-3]
        x = self.fc(self.conv(self.mbstd(x).flatten(0, -4)).flatten(1))
        score = self.out(x)[:, 0]
        if self.project is not None:
            # Projection conditioning (Miyato & Koyama): agreement of features and condition.
            projected = self.project(condition).flatten(0, -2)
            score = score + (projected * x).sum(dim=1) / math.sqrt(x.shape[1])
        return score.reshape(lead)


class TemporalDiscriminator(nn.Module):
    """Scores clips: frames [N, K, 3, R, R] in [-1, 1] at times [N, K] -> {'video': [N], 'frames': [N, K]}.

    Each frame goes alone through 2-D blocks down to `fuse_resolution`; there the K feature maps
    are concatenated and judged together, which lets D see motion and identity constancy. The
    gaps between the K times, encoded as sinusoids, condition the score. The per-frame head
    judges image quality from the unfused features.
    """

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = c = config
        frame_res = [2**i for i in range(int(math.log2(c.resolution)), int(math.log2(c.fuse_resolution)), -1)]
        self.from_rgb = Conv2dLayer(3, c.channels(c.resolution), 1, conv_clamp=c.conv_clamp)
        self.frame_blocks = nn.ModuleList(
            DiscriminatorBlock(c.channels(r), c.channels(r // 2), c.conv_clamp) for r in frame_res
        )
        fused = c.channels(c.fuse_resolution)
        self.fuse = Conv2dLayer(c.frames * fused, fused, 1, conv_clamp=c.conv_clamp)
        video_res = [2**i for i in range(int(math.log2(c.fuse_resolution)), 2, -1)]
        self.video_blocks = nn.ModuleList(
            DiscriminatorBlock(c.channels(r), c.channels(r // 2), c.conv_clamp) for r in video_res
        )
        self.register_buffer(
            "gap_freqs", 2 * math.pi / torch.logspace(0, 7, c.time_freqs, base=2.0), persistent=False
        )
        self.time_embed = FullyConnected(2 * c.time_freqs * (c.frames - 1), c.channels(4), activation="lrelu")
        self.video_head = ScoreHead(c.channels(4), c.channels(4), c.mbstd_group, c.conv_clamp)
        if c.image_head:
            image_blocks = [2**i for i in range(int(math.log2(c.fuse_resolution)), 2, -1)]
            self.image_blocks = nn.ModuleList(
                DiscriminatorBlock(c.channels(r), c.channels(r // 2), c.conv_clamp) for r in image_blocks
            )
            self.image_head = ScoreHead(c.channels(4), 0, c.mbstd_group, c.conv_clamp)

    def forward(self, frames: torch.Tensor, times: torch.Tensor) -> dict[str, torch.Tensor | None]:
        c = self.config
        assert_shape(frames, [None, c.frames, 3, c.resolution, c.resolution], "discriminator frames")
        n = frames.shape[0]
        assert_shape(times, [n, c.frames], "discriminator times")
        x = self.from_rgb(frames.flatten(0, 1))
        for block in self.frame_blocks:
            x = block(x)
        frame_scores = None
        if c.image_head:
            y = x
            for block in self.image_blocks:
                y = block(y)
            # Frame-major [K, N]: minibatch std then compares the same frame of different clips,
            # as the video head compares clips, rather than the frames of one clip.
            y = y.reshape(n, c.frames, *y.shape[1:]).transpose(0, 1)
            frame_scores = self.image_head(y).t().float()
        x = self.fuse(x.reshape(n, -1, *x.shape[2:]))
        for block in self.video_blocks:
            x = block(x)
        with full_precision(x.device):  # sinusoids of times need float32's mantissa
            gaps = (times[:, 1:] - times[:, :-1]).float()
            angle = gaps[..., None] * self.gap_freqs
            encoding = torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(1)
        condition = self.time_embed(encoding)
        # Scores in float32 whatever the autocast: the losses' softplus and R1's gradient start here.
        return {"video": self.video_head(x, condition).float(), "frames": frame_scores}
