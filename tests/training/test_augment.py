"""Clip augmentation against a per-clip NumPy loop, split over processes, gradients, fake CUDA; ADA state."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from stylevid.training.augment import (
    AdaptiveProbability,
    AugmentParams,
    apply_augment,
    augment_clips,
    draw_augment_params,
)


def _naive(clips: torch.Tensor, params: AugmentParams) -> np.ndarray:
    """The specification: clip by clip, the same transform on each of its frames, pixel by pixel."""
    out = np.empty(clips.shape)
    _, k, _, h, w = clips.shape
    for i, clip in enumerate(clips.numpy().astype(np.float64)):
        x = clip[..., ::-1] if params.flip[i] else clip
        dy, dx = (int(v) for v in params.shift[i])
        padded = np.pad(x, ((0, 0), (0, 0), (abs(dy), abs(dy)), (abs(dx), abs(dx))), mode="reflect")
        shifted = np.empty_like(x)
        for row in range(h):
            for col in range(w):
                # Content moves down by dy and right by dx.
                shifted[..., row, col] = padded[..., abs(dy) + row - dy, abs(dx) + col - dx]
        x = shifted + float(params.brightness[i])
        for f in range(k):
            x[f] = x[f].mean() + (x[f] - x[f].mean()) * float(params.contrast[i])
        gray = x.mean(axis=1, keepdims=True)
        out[i] = gray + (x - gray) * float(params.saturation[i])
    return out


def _identity(n: int) -> AugmentParams:
    return AugmentParams(
        flip=torch.zeros(n, dtype=torch.bool),
        shift=torch.zeros(n, 2, dtype=torch.long),
        brightness=torch.zeros(n),
        contrast=torch.ones(n),
        saturation=torch.ones(n),
    )


def _clips(n: int = 6, k: int = 3, h: int = 16, w: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, k, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(AugmentParams)] + ["all"])
def test_each_transform_matches_a_per_clip_loop(name):
    clips = _clips()
    drawn = draw_augment_params(6, 0.6, clips.shape[-2:], torch.Generator().manual_seed(0))
    if name == "all":
        params = drawn
    else:
        params = dataclasses.replace(_identity(6), **{name: getattr(drawn, name)})
    # The draw exercises both cases of each transform and shifts of both signs on both axes.
    identity = _identity(6)
    for field in dataclasses.fields(AugmentParams):
        on = getattr(drawn, field.name) != getattr(identity, field.name)
        assert on.any() and not on.all(), field.name
    assert (drawn.shift > 0).any(0).all() and (drawn.shift < 0).any(0).all()
    got = apply_augment(clips, params)
    np.testing.assert_allclose(got.numpy(), _naive(clips, params), atol=1e-5, rtol=0)


@pytest.mark.parametrize("world", [2, 4])
def test_a_batch_split_over_processes_is_augmented_as_in_one(world):
    clips, per = _clips(n=8), 8 // world
    whole = augment_clips(clips, 0.7, torch.Generator().manual_seed(5))
    for rank in range(world):
        rows = slice(rank * per, (rank + 1) * per)
        part = augment_clips(clips[rows], 0.7, torch.Generator().manual_seed(5), rows, 8)
        torch.testing.assert_close(part, whole[rows], atol=1e-6, rtol=0)


def test_rows_that_do_not_describe_the_clips_are_refused():
    clips, gen = _clips(n=4), torch.Generator()
    with pytest.raises(ValueError, match=r"rows=slice\(4, 8, None\) was given without batch"):
        augment_clips(clips, 0.5, gen, slice(4, 8))
    with pytest.raises(ValueError, match=r"does not fit a batch of 6"):
        augment_clips(clips, 0.5, gen, slice(4, 8), 6)
    with pytest.raises(ValueError, match=r"holds 2 clips but clips holds 4"):
        augment_clips(clips, 0.5, gen, slice(2, 4), 8)
    with pytest.raises(ValueError, match=r"batch=8 but clips holds 4 clips"):
        augment_clips(clips, 0.5, gen, batch=8)


def test_gradients_of_first_and_second_order_match_finite_differences():
    params = draw_augment_params(2, 1.0, (8, 8), torch.Generator().manual_seed(0))
    assert (params.shift != 0).any()
    x = torch.rand(2, 2, 3, 8, 8, dtype=torch.float64, requires_grad=True)

    def score(x):
        return F.softplus(3 * apply_augment(x, params))

    assert torch.autograd.gradcheck(score, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(score, (x,), fast_mode=True)


def test_an_r1_penalty_backpropagates_through_the_augmentation():
    real = _clips(n=4).requires_grad_(True)
    weight = torch.randn(real.shape[1:], generator=torch.Generator().manual_seed(1))
    scores = F.softplus(augment_clips(real, 1.0, torch.Generator().manual_seed(2)) * weight).sum()
    (grad,) = torch.autograd.grad(scores, real, create_graph=True)
    grad.square().sum().backward()
    assert real.grad is not None and real.grad.abs().sum() > 0


@pytest.mark.parametrize("p", [0.0, -0.1])
def test_zero_probability_returns_the_clips_and_draws_nothing(p):
    clips, gen = _clips(), torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert augment_clips(clips, p, gen) is clips
    assert torch.equal(gen.get_state(), state)


def test_each_transform_is_on_with_probability_p():
    n = 4000
    params = draw_augment_params(n, 0.5, (1024, 1024), torch.Generator().manual_seed(0))
    identity = _identity(n)
    bound = 5 * math.sqrt(0.25 / n)  # five binomial standard deviations
    for field in dataclasses.fields(AugmentParams):
        on = getattr(params, field.name) != getattr(identity, field.name)
        if on.ndim == 2:
            on = on.any(dim=1)  # a shift that is on is (0, 0) with probability 1/256² only
        assert abs(on.double().mean().item() - 0.5) < bound, field.name


def test_augmentation_stays_on_the_clips_device_without_reading_values():
    """Fake CUDA tensors have no values: any host read of one (or a CPU tensor mixed in) fails."""
    with FakeTensorMode(allow_non_fake_inputs=True):
        x = torch.empty(4, 3, 3, 16, 16, device="cuda")
        y = augment_clips(x, 0.5, torch.Generator().manual_seed(0), slice(4, 8), 8)
        assert y.device.type == "cuda" and y.shape == x.shape
        # ADA's whole loop on the device: p gates the draws there, update() never reads a value.
        ada = AdaptiveProbability(0.6, 100, 8, 4, p=0.5, device="cuda")
        ada.observe(torch.ones((), device="cuda"), 4)
        assert ada.update().device.type == "cuda" and ada.p.device.type == "cuda"
        y = augment_clips(x, ada.p, torch.Generator().manual_seed(0), slice(4, 8), 8)
        assert y.device.type == "cuda" and y.shape == x.shape


def test_adaptive_probability_resumes_exactly_between_updates():
    ada = AdaptiveProbability(target=0.6, speed_kimg=1, batch=8, interval=4, p=0.25)
    ada.observe(torch.tensor(3.0), 4)
    saved = json.loads(json.dumps(ada.state()))
    resumed = AdaptiveProbability(target=0.6, speed_kimg=1, batch=8, interval=4)
    resumed.load_state(saved)
    for a in (ada, resumed):
        a.observe(1.0, 2)
    assert float(resumed.update()) == float(ada.update()) == pytest.approx(4 / 6)
    assert float(resumed.p) == float(ada.p) == pytest.approx(0.25 + 8 * 4 / 1000)
    assert resumed.update() is None  # nothing observed since
    with pytest.raises(ValueError, match=r"has keys \['p'\], expected"):
        resumed.load_state({"p": 0.5})
