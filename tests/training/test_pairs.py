"""Pair batches and the teacher-space terms: pairs share exactly what they claim, and each term tells a
generator disentangled by construction from one whose latents cross."""

import pytest
import torch

from stylevid.config import FACTORS
from stylevid.networks import Generator
from stylevid.training import losses, pairs
from tests.tiny import tiny_config


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return Generator(tiny_config().generator)


def _factor_tensors(codes, factor):
    if factor in ("identity", "background"):
        return [getattr(codes, factor)]
    trajectory = getattr(codes, factor)
    return [trajectory.z, trajectory.anchors]


@pytest.mark.parametrize("step", [0, 1, 3])
def test_pairs_share_every_latent_but_the_one_they_change(generator, step):
    sampled = generator.sample(8, seed=5, frames=20)
    changed = pairs.changed_factors(4, step)
    assert sorted(changed) == sorted(FACTORS)  # every factor in every batch of 4 pairs
    batch = pairs.paired_codes(sampled, changed)
    assert len(batch) == 8
    for i, factor in enumerate(changed):
        base, variant = batch[2 * i], batch[2 * i + 1]
        for g in FACTORS:
            for b, v, s, d in zip(
                _factor_tensors(base, g),
                _factor_tensors(variant, g),
                _factor_tensors(sampled[i], g),
                _factor_tensors(sampled[4 + i], g),
                strict=True,
            ):
                assert torch.equal(b, s)  # the base is sample i, untouched
                if g == factor:
                    assert torch.equal(v, d) and not torch.equal(v, b)  # from the donor, sample 4 + i
                else:
                    assert torch.equal(v, b)


def test_pair_times_and_the_discriminators_order():
    import numpy as np

    times = np.arange(24).reshape(6, 4)
    paired = pairs.paired_times(times)
    assert (paired[1::2] == times[0::2]).all() and (paired[0::2] == times[0::2]).all()
    assert (times == np.arange(24).reshape(6, 4)).all()  # a copy
    assert pairs.discriminator_order(6) == [0, 2, 4, 1, 3, 5]
    keys = pairs.identity_keys(["identity", "pose", "identity"])
    assert keys.tolist() == [0, 3, 1, 1, 2, 5]


class QuadrantTeacher:
    """Reads factor k as the mean of channel 0 in image quadrant k: an oracle for toy generators."""

    def __call__(self, frames):
        h = frames.shape[-1] // 2
        quads = [frames[:, 0, :h, :h], frames[:, 0, :h, h:], frames[:, 0, h:, :h], frames[:, 0, h:, h:]]
        return {f: q.mean(dim=(1, 2))[:, None] for f, q in zip(FACTORS, quads, strict=True)}

    def distance(self, factor, a, b):
        return (a - b).abs().squeeze(1)


def _render(latents, mixing):
    """Toy frames [N, K, 3, 8, 8]: quadrant k shows sum_j mixing[j, k] * latent j (latents [N, 4])."""
    values = latents @ mixing  # [N, 4]
    frames = torch.zeros(len(latents), 2, 3, 8, 8)
    for k, (y, x) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
        frames[:, :, :, y : y + 4, x : x + 4] = values[:, k, None, None, None, None]
    return frames


def _pair_terms(mixing, margin=0.5):
    gen = torch.Generator().manual_seed(0)
    changed = pairs.changed_factors(8, 0)
    base = torch.rand(8, 4, generator=gen) * 2 - 1
    base[:, 0] = torch.linspace(-0.9, 0.9, 8)[torch.randperm(8, generator=gen)]  # distinct identities
    donor = base.clone()
    for i, f in enumerate(changed):
        k = FACTORS.index(f)
        donor[i, k] = -base[i, k].sign() * (0.6 + 0.4 * torch.rand((), generator=gen))  # moves >= 0.6
        if f == "identity":
            donor[i, k] = 0.95 + 0.01 * i  # a new identity, unlike every other
    teacher = QuadrantTeacher()
    frames = torch.stack([_render(base, mixing), _render(donor, mixing)], dim=1).flatten(0, 1)  # interleaved
    readings = {f: r.reshape(16, 2, -1) for f, r in teacher(frames.flatten(0, 1)).items()}
    spread = dict.fromkeys(FACTORS, 1.0)
    d = losses.pair_distances(
        teacher, {f: r[0::2] for f, r in readings.items()}, {f: r[1::2] for f, r in readings.items()}, spread
    )
    keys = pairs.identity_keys(changed)
    embeddings = readings["identity"].mean(dim=1) * 100  # identities well apart
    return (
        losses.teacher_keep(d, changed),
        losses.teacher_move(d, changed, margin),
        losses.teacher_contrast(embeddings, keys, spread=1.0),
    )


def test_each_pair_term_is_zero_when_disentangled_and_positive_when_latents_cross():
    keep, move, contrast = _pair_terms(torch.eye(4))
    assert keep.abs().max() == 0 and move.abs().max() == 0
    assert contrast.max() < 1e-3
    crossed = torch.eye(4)[[1, 0, 2, 3]]  # the identity latent draws the pose and vice versa
    keep, move, contrast = _pair_terms(crossed)
    assert (keep > 0.05).sum() >= 4  # every pair changing identity or pose moves another factor
    assert (move > 0).sum() >= 4  # ... and does not move its own
    assert contrast.mean() > 0.5
    mixed = torch.full((4, 4), 0.25) + 0.75 * torch.eye(4)  # each latent leaks a little everywhere
    keep_mixed, move_mixed, _ = _pair_terms(mixed)
    assert (keep_mixed > 0).all() and keep_mixed.mean() < keep.mean()


def test_pair_terms_leave_out_what_the_teacher_cannot_measure():
    nan = torch.tensor([float("nan")])
    d = {"identity": nan, "pose": torch.tensor([0.2]), "lighting": nan, "background": torch.tensor([0.4])}
    keep = losses.teacher_keep(d, ["identity"])
    assert keep.item() == pytest.approx((0.2**2 + 0.4**2) / 2)  # lighting unmeasured: not a zero
    assert losses.teacher_move(d, ["identity"], 0.6).item() == 0  # unmeasured identity: no push
    embeddings = torch.tensor([[0.0], [0.0], [float("nan")], [5.0]])
    contrast = losses.teacher_contrast(embeddings, torch.tensor([0, 0, 1, 1]), spread=1.0)
    assert contrast[2] == 0 and contrast[3] == 0  # its positive is unmeasured
    assert torch.isfinite(contrast).all()


def test_unmeasured_readings_send_no_nan_gradient_into_the_pair_terms():
    """The faces teacher reads NaN where MTCNN finds no face (a whole identity row) or a background
    patch is unmeasurable (one entry). Masked out of the losses, they must not come back as NaN
    gradients (0 * NaN), which turned G NaN in one step once the built-in model drew faces MTCNN finds
    in some frames and not others."""
    from types import SimpleNamespace

    from stylevid.metrics.face_readout import face_distance
    from stylevid.training.losses import pair_distances, teacher_keep, teacher_move

    torch.manual_seed(0)
    base = {f: torch.nn.functional.normalize(torch.randn(4, 3, 5), dim=-1) for f in FACTORS}
    variant = {f: torch.nn.functional.normalize(torch.randn(4, 3, 5), dim=-1) for f in FACTORS}
    base["identity"][0] = float("nan")  # no face in any frame of pair 0
    base["identity"][1, 2] = float("nan")  # nor in one frame of pair 1
    variant["background"][:, 1, 3] = float("nan")  # one unmeasurable entry per pair
    variant["pose"][2] = float("nan")
    leaves = {f: x.requires_grad_() for f, x in base.items()}
    teacher = SimpleNamespace(distance=face_distance)
    distances = pair_distances(teacher, leaves, variant, {f: 1.0 for f in FACTORS})
    assert distances["identity"][0].isnan() and distances["identity"][1:].isfinite().all()
    changed = ["identity", "pose", "lighting", "background"]
    loss = teacher_keep(distances, changed).sum() + teacher_move(distances, changed, 2.0).sum()
    assert loss.isfinite()
    loss.backward()
    for factor, leaf in leaves.items():
        assert leaf.grad.isfinite().all(), factor
    assert leaves["pose"].grad.abs().sum() > 0  # measured readings still get gradients
