"""The encoder network: fusion over references, heads, refinement passes, trajectory codes."""

import pytest
import torch

from stylevid.config import FACTORS
from stylevid.encoder import render_styles
from stylevid.encoder.fusion import AttentionPool
from stylevid.encoder.inversion import encode, styles_to_codes
from stylevid.encoder.trajectory import fit_trajectory


def _frames(video_generator, n, k, seed=0):
    codes = video_generator.sample(n * k, seed=seed, frames=8)
    frames = video_generator.render(codes, 1)[:, 0]
    return frames.reshape(n, k, *frames.shape[1:])


def test_attention_pool_is_a_quality_weighted_softmax_over_references():
    torch.manual_seed(0)
    pool = AttentionPool(8)
    tokens, quality = torch.randn(2, 5, 8), torch.randn(2, 5)
    pooled, weights = pool(tokens, quality)
    # By hand: score = key . query / sqrt(d) + quality, softmax over the references.
    for n in range(2):
        scores = torch.stack([pool.key(tokens[n, k]) @ pool.query / 8**0.5 + quality[n, k] for k in range(5)])
        w = torch.softmax(scores, 0)
        expected = sum(w[k] * pool.value(tokens[n, k]) for k in range(5))
        torch.testing.assert_close(weights[n], w)
        torch.testing.assert_close(pooled[n], expected)
    one, w1 = pool(tokens[:, :1], quality[:, :1])  # K = 1: that reference's value
    torch.testing.assert_close(one, pool.value(tokens[:, 0]))
    assert torch.equal(w1, torch.ones(2, 1))


@pytest.mark.parametrize("k", [1, 5])
def test_fused_codes_do_not_depend_on_the_order_of_the_references(encoder, video_generator, k):
    frames = _frames(video_generator, 2, k)
    styles, weights = encode(encoder.encoder, video_generator.generator, frames)
    assert styles.identity.shape == (2, encoder.config.w_dim) and weights.shape == (2, k)
    order = torch.randperm(k, generator=torch.Generator().manual_seed(3))
    shuffled, shuffled_weights = encode(encoder.encoder, video_generator.generator, frames[:, order])
    torch.testing.assert_close(shuffled.identity, styles.identity, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shuffled.background, styles.background, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shuffled.pose, styles.pose[:, order], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(shuffled_weights, weights[:, order], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("shared", [True, False])
def test_gradients_reach_every_head(encoder, video_generator, shared):
    module = encoder.encoder.train().requires_grad_(True)
    for layer in module.modules():  # heads start at zero output, which would stop gradients before them
        if isinstance(layer, torch.nn.Linear) and not layer.weight.any():
            torch.nn.init.normal_(layer.weight, std=0.01)
    frames = _frames(video_generator, 2, 3)
    start = module.initial_styles(frames, shared)  # the closed-form first estimate, trained on too
    recon = render_styles(video_generator.generator, start)
    styles, aux = module.step(frames, recon, start)
    loss = sum(getattr(styles, f).square().mean() for f in FACTORS) + aux["identity_tokens"].square().mean()
    loss.backward()
    unused = "background_frame" if shared else ("background_out", "background_pool", "background_token")
    for name, p in module.named_parameters():
        if name.startswith(unused):
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_inversion_is_deterministic(encoder, video_generator):
    frames = _frames(video_generator, 1, 3)[0]
    a = encoder.invert_full(video_generator, images=list(frames), align="none")
    b = encoder.invert_full(video_generator, images=list(frames), align="none")
    for f in FACTORS:
        x, y = getattr(a.codes, f), getattr(b.codes, f)
        assert torch.equal(x if torch.is_tensor(x) else x.anchors, y if torch.is_tensor(y) else y.anchors)


def test_images_give_one_row_each_with_the_fused_identity_and_their_own_still_pose(encoder, video_generator):
    frames = _frames(video_generator, 1, 3)[0]
    codes = encoder.invert(video_generator, images=list(frames), align="none")
    assert len(codes) == 3
    assert torch.equal(codes.identity, codes.identity[:1].expand(3, -1))  # one person
    assert not torch.isnan(codes.pose.frozen_at).any() and (codes.pose.frozen_at == 0).all()
    # A still: the same frame at every time.
    video = video_generator.render(codes, torch.tensor([0.0, 5.0, 50.0]))
    torch.testing.assert_close(video[:, 0], video[:, 2])


def test_a_trajectory_fitted_to_a_sampled_motion_gives_its_styles_back(video_generator):
    g = video_generator.generator
    codes = video_generator.sample(3, seed=4, frames=12)
    t = torch.arange(12.0)[None].expand(3, -1)
    target = g.trajectory_styles("pose", codes.pose, t)
    fitted, residual = fit_trajectory(g, "pose", target, t, 12, steps=400)
    spread = (target - target.mean(dim=(0, 1))).square().mean()
    assert (residual < 0.05 * spread).all(), (residual, spread)
    # A real trajectory: it renders at times between and beyond the fitted frames, like a sample.
    again = g.trajectory_styles("pose", fitted, t)
    torch.testing.assert_close((again - target).square().mean(dim=(1, 2)), residual)  # the residual reported
    assert video_generator.render(codes.replace(pose=fitted), torch.tensor([0.5, 11.0])).isfinite().all()


def test_a_video_becomes_one_row_whose_trajectories_cover_its_frames(encoder, video_generator):
    codes = video_generator.sample(1, seed=2, frames=10)
    video = video_generator.render(codes, 10)[0]
    result = encoder.invert_full(video_generator, video=video, align="none")
    assert len(result.codes) == 1 and result.weights.shape == (1, 10)
    assert result.codes.pose.duration >= 9 and torch.isnan(result.codes.pose.frozen_at).all()
    assert video_generator.render(result.codes, torch.linspace(0, 9, 19)).shape[1] == 19  # any frame rate


def test_another_generator_is_refused(encoder, config):
    from stylevid.api import VideoGenerator
    from stylevid.networks import Generator

    torch.manual_seed(7)
    other = VideoGenerator(Generator(config.generator), config)
    with pytest.raises(ValueError, match="train-encoder"):
        encoder.invert(other, images=[torch.zeros(3, 16, 16)], align="none")


def test_optimisation_lowers_the_reconstruction_error_and_keeps_the_generator(encoder, video_generator):
    codes = video_generator.sample(1, seed=5, frames=4)
    target = video_generator.render(codes, 1)[0]
    before = {k: v.clone() for k, v in video_generator.generator.state_dict().items()}
    plain = encoder.invert(video_generator, images=list(target), align="none")
    tuned = encoder.invert(video_generator, images=list(target), align="none", optimize=30)
    err = [(video_generator.render(c, 1)[:, 0] - target).square().mean() for c in (plain, tuned)]
    assert err[1] < err[0]
    after = video_generator.generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_styles_to_codes_refuses_per_frame_backgrounds_for_a_video(encoder, video_generator):
    styles = encoder.encoder.mean_styles(1, 4, shared_background=False)
    with pytest.raises(ValueError, match="shared_background"):
        styles_to_codes(video_generator.generator, styles, torch.zeros(1, 4), 4)
