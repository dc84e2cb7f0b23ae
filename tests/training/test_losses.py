"""R1 penalises each discriminator head's own gradient, weighted as its loss weights it."""

import dataclasses

import torch
from tiny import tiny_config

from stylevid.networks import TemporalDiscriminator
from stylevid.training import losses


def test_r1_is_each_heads_gradient_norm_against_a_per_clip_loop():
    torch.manual_seed(0)
    # Groups of one: minibatch std would couple the clips, and the loop below treats each alone.
    config = dataclasses.replace(tiny_config().discriminator, mbstd_group=1)
    disc = TemporalDiscriminator(config).double()
    frames = torch.randn(4, config.frames, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    times = torch.tensor([[0.0, 1.0, 3.0]]).expand(4, -1).double()
    penalty = losses.r1_penalty(disc(frames, times), frames)
    expected = []
    for n in range(4):
        clip = frames.detach().clone().requires_grad_(True)
        scores = disc(clip, times)
        (video,) = torch.autograd.grad(scores["video"][n], clip, retain_graph=True)
        per_frame = []
        for k in range(config.frames):
            (grad,) = torch.autograd.grad(scores["frames"][n, k], clip, retain_graph=True)
            per_frame.append(grad[n, k].square().sum())
        expected.append(video[n].square().sum() + torch.stack(per_frame).mean())
    torch.testing.assert_close(penalty, torch.stack(expected))


def test_heads_whose_scores_cancel_are_still_penalised():
    frames = torch.randn(2, 3, 3, 4, 4, requires_grad=True)
    weight = torch.randn(3, 4, 4)
    per_frame = (frames * weight).sum(dim=(2, 3, 4))  # [N, K]
    scores = {"video": -per_frame.sum(dim=1), "frames": per_frame}
    penalty = losses.r1_penalty(scores, frames)
    # video = -sum(frames): the gradient of their sum is 0, yet each head has a gradient of its own.
    expected = 3 * weight.square().sum() + weight.square().sum()
    torch.testing.assert_close(penalty, expected.expand(2))
