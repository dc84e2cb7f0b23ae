"""Generator and temporal discriminator: shapes, ranges, determinism, gradients, structural separation."""

import pytest
import torch

from stylevid.api import VideoGenerator
from stylevid.config import DiscriminatorConfig, GeneratorConfig, ModelConfig, preset
from stylevid.networks import Generator, TemporalDiscriminator


@pytest.mark.parametrize("name", ["64", "128", "256"])
def test_presets_render_and_score_with_the_right_shapes(name):
    torch.manual_seed(0)
    cfg = preset(name)
    res = cfg.generator.resolution
    gen = VideoGenerator(Generator(cfg.generator), cfg)
    codes = gen.sample(1, seed=1, frames=2)
    layers = gen.render_layers(codes, 2)
    video = gen.render(codes, 2)
    assert video.shape == (1, 2, 3, res, res)
    assert video.min() >= -1 and video.max() <= 1 and torch.isfinite(video).all()
    assert layers["alpha"].shape == (1, 2, 1, res, res)
    assert layers["alpha"].min() >= 0 and layers["alpha"].max() <= 1
    assert layers["background"].shape == (1, 3, res, res)  # one background per video
    disc = TemporalDiscriminator(cfg.discriminator)
    frames = torch.rand(1, cfg.discriminator.frames, 3, res, res) * 2 - 1
    scores = disc(frames, torch.tensor([[0.0, 1.0, 4.0]]))
    assert scores["video"].shape == (1,) and scores["frames"].shape == (1, 3)
    assert torch.isfinite(scores["video"]).all()


def test_preset_256_is_sized_like_stylegan2_256():
    cfg = preset("256").generator
    assert (cfg.w_dim, cfg.mapping_layers, cfg.channels(4), cfg.channels(64), cfg.channels(256)) == (
        512,
        8,
        512,
        256,
        64,
    )


def test_same_seed_same_video_and_different_seed_different(video_generator):
    a = video_generator.render(video_generator.sample(2, seed=5, frames=6), 6)
    b = video_generator.render(video_generator.sample(2, seed=5, frames=6), 6)
    c = video_generator.render(video_generator.sample(2, seed=6, frames=6), 6)
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 1e-3


def test_longer_sample_extends_the_same_video(video_generator):
    short = video_generator.sample(1, seed=3, frames=8)
    long = video_generator.sample(1, seed=3, frames=100)
    assert long.pose.anchors.shape[1] > short.pose.anchors.shape[1]
    torch.testing.assert_close(video_generator.render(long, 8), video_generator.render(short, 8))


def test_frames_move_over_time(video_generator):
    video = video_generator.render(
        video_generator.sample(1, seed=0, frames=32), torch.tensor([0.0, 16.0, 31.0])
    )
    assert (video[:, 0] - video[:, 2]).abs().mean() > 1e-4


def test_times_outside_the_trajectory_are_refused(video_generator):
    codes = video_generator.sample(1, seed=0, frames=8)
    with pytest.raises(ValueError, match="frames >= 41"):
        video_generator.render(codes, torch.tensor([0.0, 40.0]))


def test_gradients_reach_every_parameter(config):
    torch.manual_seed(0)
    gen, disc = Generator(config.generator), TemporalDiscriminator(config.discriminator)
    codes = gen.sample(4, seed=0, frames=10)
    t = torch.tensor([[0.0, 2.5, 7.0]] * 4)
    frames = gen(codes, t)
    scores = disc(frames, t)
    (scores["video"].sum() + scores["frames"].sum()).backward()
    for net in (gen, disc):
        missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
        assert not missing, f"no gradient reaches {missing}"


def _alpha_bias(gen: Generator, value: float) -> None:
    """Push the alpha logit of the last layer so alpha is ~1 (value > 0) or ~0 (value < 0)."""
    with torch.no_grad():
        gen.foreground_synthesis.blocks[-1].to_image.bias[-1] = value  # alpha: the last channel


def test_background_never_reaches_the_foreground_parts(video_generator):
    codes = video_generator.sample(2, seed=0, frames=5)
    other = codes.replace(background=video_generator.sample(2, seed=9).background)
    a, b = video_generator.render_layers(codes, 5), video_generator.render_layers(other, 5)
    assert torch.equal(a["foreground"], b["foreground"]) and torch.equal(a["alpha"], b["alpha"])
    assert not torch.equal(a["background"], b["background"])
    # And the composite moves by exactly (1 - alpha) times the background change.
    expect = (1 - a["alpha"]) * (a["background"] - b["background"])[:, None]
    torch.testing.assert_close(a["frames"] - b["frames"], expect, atol=1e-5, rtol=0)


@pytest.mark.parametrize("factor", ["identity", "pose", "lighting"])
def test_face_factors_never_reach_the_background(video_generator, factor):
    codes = video_generator.sample(2, seed=0, frames=5)
    other = codes.replace(**{factor: getattr(video_generator.sample(2, seed=7, frames=5), factor)})
    a, b = video_generator.render_layers(codes, 5), video_generator.render_layers(other, 5)
    assert torch.equal(a["background"], b["background"])
    assert not torch.equal(a["foreground"], b["foreground"])


def test_opaque_face_pixels_ignore_the_background(video_generator):
    """Where alpha > 0.999 a new background moves a pixel by at most 2(1 - alpha) <= 0.002."""
    _alpha_bias(video_generator.generator, 12.0)
    codes = video_generator.sample(2, seed=0, frames=4)
    other = codes.replace(background=video_generator.sample(2, seed=9).background)
    a, b = video_generator.render_layers(codes, 4), video_generator.render_layers(other, 4)
    opaque = a["alpha"] > 0.999
    assert opaque.float().mean() > 0.9
    change = (a["frames"] - b["frames"]).abs()
    assert (change * opaque).max() <= 0.002


@pytest.mark.parametrize("factor", ["identity", "pose", "lighting"])
def test_transparent_pixels_ignore_the_face_factors(video_generator, factor):
    """Where alpha < 0.001 a new identity, pose or lighting moves a pixel by at most 0.002."""
    _alpha_bias(video_generator.generator, -12.0)
    codes = video_generator.sample(2, seed=0, frames=4)
    other = codes.replace(**{factor: getattr(video_generator.sample(2, seed=7, frames=4), factor)})
    a, b = video_generator.render_layers(codes, 4), video_generator.render_layers(other, 4)
    clear = a["alpha"] < 0.001
    assert clear.float().mean() > 0.9
    assert ((a["frames"] - b["frames"]).abs() * clear).max() <= 0.002


def test_config_errors_name_the_value():
    with pytest.raises(ValueError, match="generator.resolution=48"):
        GeneratorConfig(resolution=48)
    with pytest.raises(ValueError, match="discriminator.frames=1"):
        DiscriminatorConfig(frames=1)
    with pytest.raises(ValueError, match="fuse_resolution=64"):
        DiscriminatorConfig(resolution=32, fuse_resolution=64)
    with pytest.raises(ValueError, match="differs"):
        ModelConfig(GeneratorConfig(resolution=32), DiscriminatorConfig(resolution=64))
    with pytest.raises(ValueError, match=r"unknown generator settings \['wdim'\]"):
        ModelConfig.from_dict({"generator": {"wdim": 3}})
    with pytest.raises(ValueError, match="unknown preset"):
        preset("512")


def test_config_json_round_trip(config):
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_discriminator_uses_the_time_gaps(config):
    torch.manual_seed(0)
    disc = TemporalDiscriminator(config.discriminator)
    frames = torch.randn(2, 3, 3, 16, 16)
    near = disc(frames, torch.tensor([[0.0, 1.0, 2.0]] * 2))["video"]
    far = disc(frames, torch.tensor([[0.0, 10.0, 30.0]] * 2))["video"]
    assert not torch.allclose(near, far)


def test_discriminator_rejects_wrong_clip_shapes(config):
    disc = TemporalDiscriminator(config.discriminator)
    with pytest.raises(ValueError, match=r"discriminator frames has shape \[2, 4, 3, 16, 16\]"):
        disc(torch.zeros(2, 4, 3, 16, 16), torch.zeros(2, 4))


def test_minibatch_std_groups_consecutive_samples():
    """Samples 0-1 and 2-3 form the groups: the statistic of one group ignores the other."""
    from stylevid.networks.layers import MinibatchStd

    x = torch.randn(4, 2, 3, 3)
    y = MinibatchStd(group_size=2)(x)
    expect = ((x[:2] - x[:2].mean(0)).square().mean(0) + 1e-8).sqrt().mean()
    torch.testing.assert_close(y[0, 2], torch.full((3, 3), expect.item()))
    torch.testing.assert_close(y[1, 2], y[0, 2])
    x2 = x.clone()
    x2[2:] += torch.randn(2, 2, 3, 3)
    torch.testing.assert_close(MinibatchStd(group_size=2)(x2)[:2], y[:2])


def _naive_group_std(features: torch.Tensor, group: int) -> torch.Tensor:
    """features [N, C, H, W] -> [N]: the std feature of each sample's group of consecutive samples."""
    std = torch.empty(features.shape[0], dtype=torch.float64)
    for start in range(0, features.shape[0], group):
        members = features[start : start + group].double()
        std[start : start + group] = ((members - members.mean(0)).square().mean(0) + 1e-8).sqrt().mean()
    return std


def _frame_features(disc: TemporalDiscriminator, frames: torch.Tensor) -> torch.Tensor:
    """What the per-frame head receives, frame by frame: [N, K, 3, R, R] -> [N, K, C, 4, 4]."""
    x = disc.from_rgb(frames.flatten(0, 1))
    for block in [*disc.frame_blocks, *disc.image_blocks]:
        x = block(x)
    return x.reshape(*frames.shape[:2], *x.shape[1:])


@torch.no_grad()
def test_frame_head_minibatch_std_compares_the_same_frame_of_different_clips(config):
    """Frame k's std feature is over frame k of the consecutive clips of its group, not over its clip."""
    torch.manual_seed(0)
    c = config.discriminator
    disc, n, group = TemporalDiscriminator(c), 4, c.mbstd_group
    # Each clip shows one still image: its frames do not vary, the clips do.
    frames = torch.randn(n, 1, 3, c.resolution, c.resolution).expand(-1, c.frames, -1, -1, -1)
    scores = disc(frames, torch.tensor([[0.0, 1.0, 4.0]] * n))["frames"]
    features, head = _frame_features(disc, frames), disc.image_head
    for k in range(c.frames):
        std = _naive_group_std(features[:, k], group)
        assert std.min() > 0.01  # the clips differ, so the feature sees it
        for i in range(n):
            x = torch.cat([features[i, k], torch.full((1, 4, 4), std[i].item())])[None]
            torch.testing.assert_close(scores[i, k], head.out(head.fc(head.conv(x).flatten(1)))[0, 0])


@torch.no_grad()
def test_both_heads_group_consecutive_clips_so_a_split_batch_keeps_its_groups(config):
    torch.manual_seed(0)
    c = config.discriminator
    disc, n, group = TemporalDiscriminator(c), 4, c.mbstd_group
    frames = torch.randn(n, c.frames, 3, c.resolution, c.resolution)
    t = torch.tensor([[0.0, 1.0, 4.0]] * n)
    seen = {}
    disc.video_head.mbstd.register_forward_hook(lambda _, args, out: seen.update(x=args[0], y=out))
    whole = disc(frames, t)
    expect = _naive_group_std(seen["x"], group).float()[:, None, None].expand(-1, 4, 4)
    torch.testing.assert_close(seen["y"][:, -1], expect)
    part = disc(frames[:group], t[:group])
    for name in ("video", "frames"):
        torch.testing.assert_close(part[name], whole[name][:group])


@pytest.fixture
def shaded(config):
    import dataclasses

    torch.manual_seed(0)
    model = dataclasses.replace(config, generator=dataclasses.replace(config.generator, shading=True))
    return VideoGenerator(Generator(model.generator), model)


def test_with_shading_the_lighting_code_reaches_the_frame_only_through_the_light(shaded):
    codes = shaded.sample(2, seed=0, frames=5)
    other = codes.replace(lighting=shaded.sample(2, seed=7, frames=5).lighting)
    a, b = shaded.render_layers(codes, 5), shaded.render_layers(other, 5)
    for part in ("surface", "alpha", "background"):
        assert torch.equal(a[part], b[part]), part  # albedo, normals and the mask do not see the light
    assert not torch.equal(a["foreground"], b["foreground"])
    new_pose = codes.replace(pose=shaded.sample(2, seed=7, frames=5).pose)
    assert not torch.equal(a["surface"], shaded.render_layers(new_pose, 5)["surface"])


def test_lambertian_shading_matches_a_per_pixel_loop():
    from stylevid.networks.shading import LambertianShading

    torch.manual_seed(1)
    shading = LambertianShading(8)
    surface, w = torch.randn(2, 6, 3, 3), torch.randn(2, 8)
    out = shading(surface, w)
    p = shading.light.weight @ w.T / 8**0.5  # the layer's own affine map, by hand (bias 0)
    p = p.T + shading.light.bias
    for n in range(2):
        direction = p[n, :3] + torch.tensor([0.0, 0.0, 1.0])
        direction = direction / direction.norm()
        key, ambient = torch.log1p(p[n, 3].exp()), torch.log1p(p[n, 4].exp())
        colour = torch.exp(0.25 * torch.tanh(p[n, 5:8]))
        for y in range(3):
            for x in range(3):
                normal = surface[n, 3:, y, x] + torch.tensor([0.0, 0.0, 1.0])
                normal = normal / normal.norm()
                light = ambient + key * max(float(normal @ direction), 0.0)
                for c in range(3):
                    albedo = (surface[n, c, y, x] + 1) / 2
                    expected = albedo * colour[c] * light * 2 - 1
                    assert float(out[n, c, y, x]) == pytest.approx(float(expected), abs=1e-5)


def test_pose_rotation_matches_scipy():
    from scipy.spatial.transform import Rotation

    from stylevid.networks.pose_warp import rotation

    angles = torch.tensor([[0.3, -0.2, 0.1], [-0.7, 0.4, -0.5]], dtype=torch.float64)
    ours = rotation(angles).numpy()
    for (yaw, pitch, roll), mine in zip(angles.tolist(), ours, strict=True):
        expected = Rotation.from_euler("ZXY", [roll, pitch, yaw]).as_matrix()  # intrinsic: Rz Rx Ry
        assert mine == pytest.approx(expected, abs=1e-12)


def _warp_with(angles, resolution=8):
    from stylevid.networks.pose_warp import ANGLE_SCALE, PoseWarp

    warp = PoseWarp(4, resolution)
    with torch.no_grad():
        for layer in (warp.angles, warp.flow):
            layer.weight.zero_()
            layer.bias.zero_()
        warp.angles.bias.copy_(torch.tensor(angles) / ANGLE_SCALE / warp.angles.bias_gain)
    return warp


def test_the_pose_warp_is_exact_at_rest_and_a_roll_turns_the_image():
    import math

    layers = torch.randn(1, 5, 8, 8)
    w = torch.zeros(1, 4)
    rest = _warp_with([0.0, 0.0, 0.0])(layers, w)
    torch.testing.assert_close(rest, layers, atol=1e-5, rtol=0)
    turned = _warp_with([0.0, 0.0, math.pi / 2])(layers, w)
    # A quarter turn maps pixel centres onto pixel centres: the image rotated, exactly.
    candidates = [torch.rot90(layers, k, dims=(2, 3)) for k in (1, 3)]
    assert min(float((turned - c).abs().max().detach()) for c in candidates) < 1e-4


def test_the_pose_warp_turns_normals_with_the_head():
    import math

    normals = torch.zeros(1, 3, 8, 8)
    normals[:, 2] = 1.0  # every normal faces the camera
    layers = torch.cat([torch.rand(1, 3, 8, 8), normals], dim=1)
    out = _warp_with([0.4, 0.0, 0.0])(layers, torch.zeros(1, 4), normals=slice(3, 6))
    expected = torch.tensor([math.sin(0.4), 0.0, math.cos(0.4)])  # Ry (0, 0, 1)
    torch.testing.assert_close(out[0, 3:, 4, 4], expected, atol=1e-5, rtol=0)


def test_with_the_pose_prior_the_face_is_painted_once_per_video(config):
    import dataclasses

    torch.manual_seed(0)
    gen_config = dataclasses.replace(config.generator, shading=True, pose_warp=True)
    gen = Generator(gen_config)
    calls = []
    gen.foreground_synthesis.register_forward_hook(lambda m, args, out: calls.append(args[0].shape))
    codes = gen.sample(2, seed=0, frames=6)
    frames = gen(codes, 6)
    assert frames.shape == (2, 6, 3, 16, 16)
    assert calls == [torch.Size([2, config.generator.w_dim])]  # identity only, one row per video
    other = codes.replace(pose=gen.sample(2, seed=5, frames=6).pose)
    assert not torch.equal(frames, gen(other, 6))
