"""The 3D-aware face layer (networks/face3d.py): symmetry, reprojection against the synthetic renderer's own
head, the light against a per-pixel loop, factors that cannot reach each other's values, and the controls."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from stylevid.codes import Codes
from stylevid.codes_file import load_codes, save_codes
from stylevid.config import GeneratorConfig
from stylevid.data.synthetic.factors import sample_factors
from stylevid.data.synthetic.head import face_of
from stylevid.data.synthetic.head import rotation as renderer_rotation
from stylevid.data.synthetic.render import landmarks
from stylevid.data.synthetic.trace import CAMERA, SURFACES, VIEW_HALF, camera_rays, place, trace
from stylevid.networks import Generator
from stylevid.networks.face3d import (
    CANONICAL_CHANNELS,
    POSE_NAMES,
    FaceLayer,
    RendererLight,
    face_template,
    rotation,
)

R = 64


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    config = GeneratorConfig(
        resolution=32,
        z_dim=16,
        motion_dim=8,
        w_dim=32,
        mapping_layers=1,
        motion_layers=1,
        channel_base=256,
        channel_max=16,
        face3d=True,
        pivot=(0.0, 0.1, 0.0),
    )
    return Generator(config).eval().requires_grad_(False)


def test_the_dome_is_a_field_of_the_generators_config():
    from stylevid.config import ModelConfig
    from stylevid.networks import face3d

    assert GeneratorConfig().dome == face3d.DOME_SHAPE  # the config's default is the fitted dome
    config = ModelConfig(GeneratorConfig(face3d=True, dome=(0.5, 0.7)))
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))  # as a checkpoint stores it
    assert again.generator.dome == (0.5, 0.7)
    older = config.to_dict()
    del older["generator"]["dome"]  # a checkpoint written before the field: the fitted dome
    assert ModelConfig.from_dict(older).generator.dome == face3d.DOME_SHAPE
    with pytest.raises(ValueError, match=r"generator.dome=\[0.0, 0.9\]"):
        GeneratorConfig(dome=(0.0, 0.9))


def test_the_canonical_layers_are_mirror_symmetric_by_construction():
    layer = FaceLayer(8, 16)
    maps = layer.canonical(torch.randn(3, CANONICAL_CHANNELS, 16, 16))
    for name in ("head_albedo", "head_depth", "head_alpha", "body_albedo", "body_depth", "body_alpha"):
        assert torch.equal(maps[name], maps[name].flip(-1)), name
    # A mirrored normal points the other way in x, and the same way in y and z.
    normal = maps["head_normal"]
    assert torch.allclose(normal[:, 0], -normal[:, 0].flip(-1), atol=1e-6)
    assert torch.allclose(normal[:, 1:], normal[:, 1:].flip(-1), atol=1e-6)
    # The ablation's switch really switches it off.
    free = FaceLayer(8, 16, symmetric=False).canonical(torch.randn(1, CANONICAL_CHANNELS, 16, 16))
    assert not torch.equal(free["head_albedo"], free["head_albedo"].flip(-1))


def _luminance_at(layer: FaceLayer, yaw: float) -> np.ndarray:
    """The layer's head [R, R] with flat canonical layers (mid-grey albedo) at yaw degrees, ambient light."""
    settings = dict(
        yaw=yaw, pitch=0.0, roll=0.0, azimuth=0.0, elevation=0.0, intensity=0.0, ambient=1.0, warmth=0.0
    )
    settings = {k: torch.full((1, 1), float(v)) for k, v in settings.items()}
    zeros = torch.zeros(1, 1, 8)
    rgb, alpha, _ = layer(torch.zeros(1, CANONICAL_CHANNELS, R, R), zeros, zeros, settings)
    return ((rgb[0].mean(0) + 1) / 2 * alpha[0, 0]).detach().numpy()


@pytest.mark.parametrize("yaw", [0.0, 30.0, -25.0])
def test_the_drawn_face_has_eyes_and_mouth_where_the_renderer_puts_them(yaw):
    """The oracle: the synthetic renderer's landmarks of a head of average proportions at the same yaw.
    The darkening the drawn face adds (with it minus without) is centred on each eye and the mouth, turned
    or not: the drawn face is where the renderer paints its features, and the dome as deep as its head.
    Within a pixel, or 1.5 for the turned mouth: 10 pixels wide and foreshortened more on its far side,
    its darkness is centred off the centre point the landmark marks."""
    with_face = FaceLayer(8, R, pivot=(0.0, 0.1, 0.0), template=True)
    darker = _luminance_at(FaceLayer(8, R, pivot=(0.0, 0.1, 0.0)), yaw) - _luminance_at(with_face, yaw)
    xy, visible = landmarks(np.full(20, 0.5, np.float32), [math.radians(yaw), 0.0, 0.0], R)
    for k in (1, 2, 3):  # right eye, left eye, mouth
        assert visible[k]
        cx, cy = np.round(xy[k]).astype(int)
        across = 3 if k < 3 else 6  # the mouth is 10 pixels wide
        window = darker[cy - 2 : cy + 3, cx - across : cx + across + 1].clip(0)  # brows: 5 pixels above
        assert window.sum() > 0.5, (k, window.sum())
        rows, cols = np.mgrid[cy - 2 : cy + 3, cx - across : cx + across + 1]
        centre = np.array([(cols * window).sum(), (rows * window).sum()]) / window.sum()
        assert np.hypot(*(centre - xy[k])) < (1.0 if k < 3 or yaw == 0 else 1.5), (k, centre, xy[k])


def test_the_dome_is_as_deep_as_an_average_synthetic_face():
    """The oracle: the renderer's cranium and jaw of a head of average proportions, seen frontally."""
    from stylevid.data.synthetic.head import surface_z
    from stylevid.data.synthetic.trace import CAMERA_DISTANCE

    layer = FaceLayer(8, 256, pivot=(0.0, 0.1, 0.0))
    face = face_of(np.full(20, 0.5, np.float32))
    points = {"eye": (face.eye_spacing, face.eye_y), "mouth": (0.0, face.mouth_y), "forehead": (0.0, 0.6)}
    points |= {"chin": (0.0, -0.9), "cheek": (0.45, -0.3)}
    for name, (x, y) in points.items():
        z = float(surface_z([face.shapes["cranium"], face.shapes["jaw"]], x, y))  # head units
        scale = CAMERA_DISTANCE / (CAMERA_DISTANCE - z) / VIEW_HALF  # the frontal camera's projection
        u, v = x * scale, (y - CAMERA[1]) * scale  # in half frame widths
        column, row = int((u + 1) / 2 * 256), int((1 - v) / 2 * 256)
        assert abs(layer.dome[0, 0, row, column].item() - z / VIEW_HALF) < 0.06, name


def test_the_drawn_face_is_mirror_symmetric_and_off_unless_asked_for():
    drawn = face_template(R, (0.0, 0.1, 0.0))
    assert torch.equal(drawn, drawn.flip(-1))
    assert drawn.min() < -2.5 and drawn.max() > 0.5  # dark irises, white eyes
    assert not FaceLayer(8, R).drawn_face.any()


def test_silhouettes_are_binary_and_pass_the_sigmoids_gradient():
    torch.manual_seed(0)
    layer = FaceLayer(8, 8)
    logits = torch.randn(2, CANONICAL_CHANNELS, 8, 8, requires_grad=True)
    alpha = layer.canonical(logits)["head_alpha"]
    assert set(alpha.unique().tolist()) <= {0.0, 1.0}
    alpha.sum().backward()
    # Straight through: every logit outside the core (which is always opaque) gets the sigmoid's slope.
    free = layer.places[0, 0] == 0
    assert free.any() and logits.grad[:, 4][:, free].abs().min() > 0


def _renderer_view(face, pose):
    """The renderer's ray hits on the turned head at pose (radians): which pixels, and the head-space
    point each shows [R, R, 3] (the head's own coordinates, so the same point of the face at any pose)."""
    rays = camera_rays(R)
    rot = renderer_rotation(*pose)
    t, surface = trace(face, rot, rays, place(face, rot))
    head = [i for i, s in enumerate(SURFACES) if s[3] == "head"]
    hit = np.isin(surface, head)
    n = np.flatnonzero(hit)
    world = rays.points(t[n], n)
    points = np.zeros((R * R, 3), np.float32)
    points[n] = world @ rot  # world -> head space
    depth = np.full(R * R, -2.0, np.float32)
    depth[n] = world[:, 2] / VIEW_HALF  # in half frame widths
    return hit.reshape(R, R), points.reshape(R, R, 3), depth.reshape(R, R)


@pytest.mark.parametrize(
    "pose", [(0.5, 0.0, 0.0), (-0.5, 0.0, 0.0), (0.0, 0.3, 0.0), (0.0, 0.0, 0.25), (0.6, -0.2, 0.15)]
)
def test_reprojection_matches_the_renderers_head_at_a_known_pose(pose):
    """The oracle: the synthetic renderer traces the same head at the pose. Its frontal view gives the
    canonical depth and, as the maps to turn, each pixel's head-space point; turned by our layer, each
    pixel must show the point the renderer's ray hits at that pose."""
    face = face_of(sample_factors(3, 2).identity)
    hit0, points0, depth0 = _renderer_view(face, (0.0, 0.0, 0.0))
    hit1, points1, _ = _renderer_view(face, pose)
    layer = FaceLayer(8, R, camera_distance=8 / VIEW_HALF, pivot=(0.0, -float(CAMERA[1]) / VIEW_HALF, 0.0))
    maps = torch.cat([torch.from_numpy(points0).permute(2, 0, 1), torch.from_numpy(hit0).float()[None]])[None]
    rot = rotation(*(torch.tensor([a]) for a in pose))
    out, hit, _ = layer.turn(maps, torch.from_numpy(depth0)[None, None], rot)
    ours = out[0, :3].permute(1, 2, 0).numpy()
    shown = (out[0, 3].numpy() > 0.99) & (hit[0, 0].numpy() > 0)
    both = hit1 & shown
    # Sides of the head the frontal view never saw cannot be shown: most, not all, pixels agree.
    assert both.sum() / (hit1 | shown).sum() > 0.85
    error = np.linalg.norm(ours - points1, axis=-1)[both]
    assert np.median(error) < 0.01  # head units: the head is about 1.6 wide
    assert np.percentile(error, 75) < 0.05


def test_at_rest_the_turn_shows_the_canonical_maps_unchanged():
    layer = FaceLayer(8, 32, pivot=(0.0, 0.1, 0.0))
    maps = torch.rand(2, 4, 32, 32)
    depth = torch.full((2, 1, 32, 32), 0.3)
    out, hit, _ = layer.turn(maps, depth, torch.eye(3).expand(2, 3, 3))
    assert hit.bool().all()
    assert torch.allclose(out, maps, atol=1e-5)


def test_the_renderer_light_matches_a_per_pixel_loop_of_the_renderers_formula():
    from stylevid.data.synthetic import shade  # the renderer's own constants

    light_net = RendererLight(4)
    torch.manual_seed(1)
    albedo = torch.rand(2, 3, 3, 4)
    normal = torch.nn.functional.normalize(torch.randn(2, 3, 3, 4), dim=1)
    light = {
        "azimuth": torch.tensor([30.0, -60.0]),
        "elevation": torch.tensor([20.0, -10.0]),
        "intensity": torch.tensor([1.2, 0.8]),
        "ambient": torch.tensor([0.3, 0.2]),
        "warmth": torch.tensor([0.5, -1.0]),
    }
    ours = light_net.shade(albedo, normal, light)
    for b in range(2):
        az, el = math.radians(light["azimuth"][b]), math.radians(light["elevation"][b])
        lx, ly, lz = math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)
        for i in range(3):
            for j in range(4):
                n = normal[b, :, i, j].tolist()
                cos = n[0] * lx + n[1] * ly + n[2] * lz
                diffuse = min(max((cos + shade._WRAP) / (1 + shade._WRAP), 0), 1)
                sky = float(light["ambient"][b]) * (0.7 + 0.3 * n[1])
                for c in range(3):
                    gain = 1 + float(light["warmth"][b]) * shade._WARMTH[c]
                    energy = (sky + float(light["intensity"][b]) * diffuse) * float(albedo[b, c, i, j]) ** 2
                    want = math.sqrt(min(max(energy * gain, 1e-4), 1))
                    assert float(ours[b, c, i, j]) == pytest.approx(want, abs=1e-5)


def test_light_values_stay_in_their_physical_ranges_however_large_the_code():
    light = RendererLight(4)
    values = light.values(1e4 * torch.randn(64, 4))
    for name, (low, high) in light.limits.items():
        assert values[name].min() >= low and values[name].max() <= high, name
    assert light.limits["intensity"][0] > 0  # the light can never be dimmed away


def _grads(generator, codes, t, names):
    """Gradients of the named physical values w.r.t. each factor's styles."""
    g = generator
    tt = torch.as_tensor(t, dtype=torch.float32)[None].expand(len(codes), -1)
    pose = g.trajectory_styles("pose", codes.pose, tt).detach().requires_grad_(True)
    lighting = g.trajectory_styles("lighting", codes.lighting, tt).detach().requires_grad_(True)
    identity = codes.identity.detach().clone().requires_grad_(True)
    canonical = g.foreground_synthesis(identity)
    _, _, values = g.face(canonical, pose, lighting)
    total = sum(values[n].sum() for n in names)
    return dict(
        zip(
            ("identity", "pose", "lighting"),
            torch.autograd.grad(total, [identity, pose, lighting], allow_unused=True),
            strict=True,
        )
    )


def test_identity_and_lighting_cannot_change_the_pose_angles(generator):
    grads = _grads(generator, generator.sample(3, 0, 8), [0.0, 3.0], ("yaw", "pitch", "roll"))
    assert grads["pose"] is not None and grads["pose"].abs().sum() > 0
    for factor in ("identity", "lighting"):
        assert grads[factor] is None or torch.count_nonzero(grads[factor]) == 0, factor


def test_pose_and_identity_cannot_change_the_light(generator):
    names = ("azimuth", "elevation", "intensity", "ambient", "warmth")
    grads = _grads(generator, generator.sample(3, 0, 8), [0.0, 3.0], names)
    assert grads["lighting"] is not None and grads["lighting"].abs().sum() > 0
    for factor in ("identity", "pose"):
        assert grads[factor] is None or torch.count_nonzero(grads[factor]) == 0, factor


def test_with_pose_and_with_light_set_what_the_generator_renders_and_reads_back(generator):
    codes = generator.sample(2, 1, 16)
    t = torch.tensor([0.0, 5.0, 10.0])
    edited = codes.with_pose(yaw=30, roll=[-5, 5]).with_light(azimuth={0: -40, 10: 40})
    values = generator.physical_values(edited, t)
    assert torch.allclose(values["yaw"], torch.full((2, 3), 30.0))
    assert torch.allclose(values["roll"], torch.tensor([[-5.0] * 3, [5.0] * 3]))
    assert torch.allclose(values["azimuth"], torch.tensor([[-40.0, 0.0, 40.0]] * 2))
    # What is not set is the code's own.
    own = generator.physical_values(codes, t)
    assert torch.equal(values["pitch"], own["pitch"]) and torch.equal(values["warmth"], own["warmth"])
    # The frames really are rendered at that pose: setting the code's own yaw changes nothing.
    same = codes.with_pose(yaw=own["yaw"][:, :1].reshape(-1))
    frames = generator(codes, t[:1])
    assert torch.allclose(generator(same, t[:1]), frames, atol=1e-5)
    assert not torch.allclose(generator(edited, t[:1]), frames, atol=1e-3)
    with pytest.raises(ValueError, match="strength"):
        generator(codes.with_light(strength=0.5), t)  # the renderer's light has no strength


def test_keyframes_are_linear_between_and_held_outside_like_numpy_interp(generator):
    codes = generator.sample(1, 0, 64).with_pose(yaw={10: -40, 30: 40, 50: 0})
    t = torch.tensor([0.0, 10, 15, 30, 41, 50, 63])
    got = generator.physical_values(codes, t)["yaw"][0]
    want = np.interp(t.numpy(), [10, 30, 50], [-40, 40, 0])
    assert np.allclose(got.numpy(), want, atol=1e-5)


def test_settings_survive_indexing_concatenation_and_a_codes_file(generator, tmp_path):
    codes = generator.sample(3, 2, 16).with_pose(yaw={0: -20, 15: 20}).with_light(warmth=0.5)
    t = torch.arange(4.0)
    want = generator.physical_values(codes, t)
    back = load_codes(save_codes(tmp_path / "c.safetensors", codes))
    got = generator.physical_values(back, t)
    for name in ("yaw", "warmth"):
        assert torch.equal(got[name], want[name])
    joined = Codes.cat([codes[0], generator.sample(1, 9, 16)])  # one video without settings keeps its own
    values = generator.physical_values(joined, t)
    assert torch.equal(values["yaw"][0], want["yaw"][0])
    alone = generator.physical_values(generator.sample(1, 9, 16), t)["yaw"][0]
    assert torch.allclose(values["yaw"][1], alone, atol=1e-5)  # a batch of 2 sums in another order
    assert torch.equal(generator.physical_values(codes[1:], t)["warmth"], want["warmth"][1:])


def test_bad_settings_are_named():
    from tests.tiny import tiny_config

    plain = Generator(tiny_config().generator)
    codes = plain.sample(2, 0, 8)
    with pytest.raises(ValueError, match="unknown values"):
        codes.with_pose(jaw=3)
    with pytest.raises(ValueError, match="3 values for 2 videos"):
        codes.with_pose(yaw=[1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        codes.with_pose(yaw=float("nan"))
    with pytest.raises(ValueError, match="no face layer"):
        plain(codes.with_pose(yaw=10), 2)


def test_the_face_layer_replaces_the_older_priors():
    with pytest.raises(ValueError, match="replaces"):
        GeneratorConfig(face3d=True, shading=True)
    with pytest.raises(ValueError, match="light"):
        GeneratorConfig(face3d=True, light="sun")


def test_a_spherical_harmonics_face_layer_renders_and_learns():
    config = dataclasses.replace(
        GeneratorConfig(resolution=16, z_dim=8, motion_dim=4, w_dim=8, channel_base=64, channel_max=8),
        face3d=True,
        light="sh",
    )
    g = Generator(config)
    frames = g(g.sample(2, 0, 4), 2)
    assert frames.shape == (2, 2, 3, 16, 16) and torch.isfinite(frames).all()
    frames.square().mean().backward()
    assert all(p.grad is not None for n, p in g.named_parameters() if n.startswith(("face", "foreground")))


def test_edit_sets_yaw_and_light_from_the_command_line_and_refuses_a_model_without_them(generator, tmp_path):
    from PIL import Image

    from stylevid import cli
    from stylevid.api import VideoGenerator
    from stylevid.config import DiscriminatorConfig, ModelConfig
    from stylevid.options import UsageError
    from tests.tiny import tiny_config

    model = ModelConfig(generator.config, DiscriminatorConfig(resolution=32, fuse_resolution=8))
    network = VideoGenerator(generator, model).save(tmp_path / "face.safetensors")
    out = tmp_path / "sheet.png"
    argv = [
        "edit",
        "--network",
        str(network),
        "--frames",
        "3",
        "--seeds",
        "0,1",
        "--out",
        str(out),
        "--quiet",
    ]
    assert cli.main([*argv, "--yaw=-40:40", "--light-azimuth", "30"]) == 0
    sheet = np.asarray(Image.open(out))
    # One row of frames per video: the originals, then the same videos turned and relit.
    rows = [sheet[k * 34 : k * 34 + 32] for k in range(4)]  # 32-pixel rows, 2 pixels apart
    assert sheet.shape[0] == 4 * 32 + 3 * 2
    assert not np.array_equal(rows[0], rows[2]) and not np.array_equal(rows[1], rows[3])
    assert not np.array_equal(rows[0], rows[1])
    gen = VideoGenerator(generator)
    edited = gen.sample(1, 0, 3).with_pose(yaw={0: -40, 2: 40})
    assert torch.allclose(gen.pose_angles(edited, 3)["yaw"], torch.tensor([[-40.0, 0.0, 40.0]]))
    with pytest.raises(UsageError, match="--yaw 100 is outside -70..70 degrees"):
        cli.main([*argv, "--yaw", "100"])
    plain = VideoGenerator(Generator(tiny_config().generator), tiny_config()).save(
        tmp_path / "plain.safetensors"
    )
    with pytest.raises(UsageError, match="no face layer"):
        cli.main(["edit", "--network", str(plain), "--frames", "3", "--out", str(out), "--yaw", "10"])


@pytest.mark.parametrize(("yaw", "dome"), [(-40.0, None), (40.0, None), (40.0, (0.5, 0.7))])
def test_a_turned_head_shows_its_silhouette_where_a_forward_projection_of_the_dome_puts_it(yaw, dome):
    """The oracle runs the other way round: points of the core silhouette on the dome (a paraboloid
    over an ellipse), turned and projected forward through the camera, mark the pixels the head must cover;
    our layer marches rays backwards (IoU 0.90; edge pixels differ, the oracle marking any pixel a
    point falls in). An earlier dome (half an ellipsoid, the cliff test at 0.3) gave 0.63."""
    from stylevid.networks import face3d

    pivot = (0.0, 0.1, 0.0)
    # The default dome, and another one as a generator config sets it (GeneratorConfig.dome).
    if dome is None:
        layer = FaceLayer(8, 64, pivot=pivot)
    else:
        config = GeneratorConfig(
            resolution=64, z_dim=8, motion_dim=8, w_dim=8, channel_base=256, channel_max=8, face3d=True,
            pivot=pivot, dome=dome,
        )  # fmt: skip
        layer = Generator(config).face
    layers = torch.full((1, CANONICAL_CHANNELS, 64, 64), -20.0)  # nothing beyond the core; no body
    layers[:, 3] = 0.0  # the dome's own depth
    styles = torch.zeros(1, 1, 8)
    settings = {"yaw": torch.tensor([[yaw]]), "pitch": torch.zeros(1, 1), "roll": torch.zeros(1, 1)}
    ours = layer(layers, styles, styles, settings)[1][0, 0].detach().numpy() > 0.5

    # Forward: the frontal camera's view of the whole dome (a paraboloid over an ellipse), unprojected
    # onto it, turned, projected, and z-buffered; a pixel must be opaque where the nearest point there
    # lies in the core silhouette (the rest of the dome is transparent but still hides what is behind).
    d = 16 / 3
    u, v = np.meshgrid(np.linspace(-1, 1, 1201), np.linspace(-1, 1, 1201))  # the frontal view's image plane
    (ax, ay), (cx, cy) = face3d.HEAD_CORE, dome or face3d.DOME_SHAPE
    z = np.zeros_like(u)
    for _ in range(50):  # the dome point seen at (u, v): a fixed point, the dome being shallow
        x, y = u * (d - z) / d, v * (d - z) / d
        z = face3d.DOME_HEIGHT * np.clip(1 - ((x - pivot[0]) / cx) ** 2 - ((y - pivot[1]) / cy) ** 2, 0, None)
    on_dome = z > 0
    core = (((u - pivot[0]) / ax) ** 2 + ((v - pivot[1]) / ay) ** 2 < 1)[on_dome]
    points = np.stack([x[on_dome], y[on_dome], z[on_dome]], -1) - np.array(pivot)
    rot = rotation(torch.tensor([math.radians(yaw)]), torch.zeros(1), torch.zeros(1))[0].numpy()
    turned = points @ rot.T + np.array(pivot)
    px, py = turned[:, 0] * d / (d - turned[:, 2]), turned[:, 1] * d / (d - turned[:, 2])
    pixel = np.floor((1 - py) / 2 * 64).astype(int) * 64 + np.floor((px + 1) / 2 * 64).astype(int)
    order = np.lexsort((turned[:, 2], pixel))  # by pixel, nearest last
    last = np.r_[pixel[order][1:] != pixel[order][:-1], True]
    want = np.zeros(64 * 64, bool)
    want[pixel[order][last]] = core[order][last]
    want = want.reshape(64, 64)
    assert (want & ours).sum() / (want | ours).sum() > 0.85


def test_quantile_interpolates_a_table_like_numpy_interp():
    from stylevid.networks.face3d import quantile

    table = torch.tensor([-3.0, -1.0, 0.5, 4.0, 4.5])
    levels = torch.linspace(0, 1, 101)
    at = (np.arange(5) + 0.5) / 5  # the table's levels
    expected = np.interp(levels.numpy(), at, table.numpy())  # holds the ends beyond them, as quantile does
    assert np.allclose(quantile(table, levels).numpy(), expected, atol=1e-6)


def _marginal_layer(seed=0) -> FaceLayer:
    from scipy import stats

    torch.manual_seed(seed)
    layer = FaceLayer(8, 16, pose_marginal=True).requires_grad_(False)
    levels = (np.arange(256) + 0.5) / 256
    laws = (stats.laplace(scale=20), stats.norm(scale=10), stats.uniform(-5, 10))
    layer.set_pose_quantiles(
        {name: torch.tensor(law.ppf(levels)) for name, law in zip(POSE_NAMES, laws, strict=True)}
    )
    return layer


def test_a_pose_marginal_layer_draws_the_tables_distribution_whatever_the_heads_scale():
    from scipy import stats

    layer = _marginal_layer()
    w = torch.randn(512, 8, 8)
    values = layer.pose_values(w)
    laws = {"yaw": stats.laplace(scale=20), "pitch": stats.norm(scale=10), "roll": stats.uniform(-5, 10)}
    for name, law in laws.items():  # the head's readings are Gaussian in w: the values follow the table
        assert stats.kstest(values[name].flatten().numpy(), law.cdf).statistic < 0.03, name
    # G cannot narrow the turns: a head that reads 10x smaller (and shifted) gives the same values.
    with torch.no_grad():
        layer.pose_head.weight.mul_(0.1)
        layer.pose_head.bias.add_(3.0)
    again = layer.pose_values(w)
    for name in laws:
        assert torch.allclose(again[name], values[name], atol=1e-3), name


def test_a_pose_marginal_layer_uses_its_running_statistics_outside_training_and_for_small_batches():
    layer = _marginal_layer()
    w = 2 + 3 * torch.randn(64, 16, 8)
    for _ in range(200):  # the running statistics converge to the batch's
        training = layer.pose_values(w)
    layer.eval()
    evaluated = layer.pose_values(w)
    for name in training:
        assert torch.allclose(evaluated[name], training[name], atol=0.05), name
    # One video at one time in eval mode reads as it does in the batch: no sample depends on its neighbours.
    single = layer.pose_values(w[:1, :1])
    assert torch.allclose(single["yaw"], evaluated["yaw"][:1, :1], atol=1e-5)
    layer.train()
    small = layer.pose_values(w[:1, :2])  # too few readings for batch statistics, even while training
    assert torch.allclose(small["yaw"], evaluated["yaw"][:1, :2], atol=1e-5)


def test_pose_marginal_is_stored_refused_without_the_face_layer_and_filled_by_the_trainer(tmp_path):
    from stylevid.config import ModelConfig
    from stylevid.networks.face3d import POSE_QUANTILES
    from stylevid.training.config import train_preset
    from stylevid.training.value_prior import renderer_quantiles

    with pytest.raises(ValueError, match="pose_marginal.*needs generator.face3d"):
        GeneratorConfig(pose_marginal=True)
    config = train_preset("synth64")
    marginal = dataclasses.replace(config.model.generator, pose_marginal=True)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, generator=marginal))
    older = config.model.to_dict()
    del older["generator"]["pose_marginal"]  # a checkpoint written before the field
    assert not ModelConfig.from_dict(older).generator.pose_marginal
    real = train_preset("ffs256")
    bad = dataclasses.replace(real.model.generator, pose_marginal=True)
    with pytest.raises(ValueError, match="pose_marginal.*renderer"):
        dataclasses.replace(real, model=dataclasses.replace(real.model, generator=bad))
    # The table a generator learns with is the renderer's own, and a checkpoint keeps it.
    from stylevid import checkpoint
    from stylevid.api import load

    generator = Generator(config.model.generator)
    data = renderer_quantiles(POSE_QUANTILES)
    generator.face.set_pose_quantiles(data)
    assert torch.equal(generator.face.pose_quantiles[POSE_NAMES.index("pitch")], data["pitch"])
    generator.face.pose_mean.fill_(0.25)
    path = checkpoint.save_checkpoint(
        tmp_path / "g.safetensors", {"G_ema": generator}, {"model": config.model.to_dict()}, {}
    )
    loaded = load(path).generator.face
    assert torch.equal(loaded.pose_quantiles, generator.face.pose_quantiles)
    assert torch.equal(loaded.pose_mean, generator.face.pose_mean)
    # The trainer fills the table from the renderer's distribution before the first step.
    from tiny import ClipsInMemory, tiny_config, tiny_training

    from stylevid.training.trainer import Trainer

    tiny = tiny_config()
    face = dataclasses.replace(tiny.generator, face3d=True, pivot=(0.0, 0.1, 0.0), pose_marginal=True)
    trainer = Trainer(
        tiny_training(model=dataclasses.replace(tiny, generator=face)), ClipsInMemory(), tmp_path / "run"
    )
    assert trainer.G.pose_marginal and not Generator(tiny.generator).pose_marginal
    for name in POSE_NAMES:
        assert torch.equal(trainer.G.face.pose_quantiles[POSE_NAMES.index(name)], data[name])
    with pytest.raises(ValueError, match="needs a face layer with generator.pose_marginal"):
        Generator(dataclasses.replace(face, pose_marginal=False)).face.set_pose_quantiles(data)
    with pytest.raises(ValueError, match="pose quantiles"):
        generator.face.set_pose_quantiles({name: values[:100] for name, values in data.items()})


def test_calibrate_pose_sets_the_populations_statistics_of_the_pose_heads_readings(generator):
    config = dataclasses.replace(generator.config, pose_marginal=True)
    torch.manual_seed(1)
    g = Generator(config).eval().requires_grad_(False)
    g.calibrate_pose(frames=64, videos=512)
    # An independent draw (other seeds, other times) standardised by them has mean 0 and variance 1.
    codes = g.sample(512, seed=7, frames=64)
    t = torch.rand(512, 8) * 63
    raw = g.face.pose_head(g.trajectory_styles("pose", codes.pose, t)).flatten(0, 1)
    z = (raw - g.face.pose_mean) / g.face.pose_var.sqrt()
    assert torch.allclose(z.mean(0), torch.zeros(3), atol=0.15)
    assert torch.allclose(z.var(0), torch.ones(3), atol=0.15)
    with pytest.raises(ValueError, match="pose_marginal"):
        generator.calibrate_pose(frames=64)


@pytest.mark.parametrize("centred", [False, True])
def test_centred_depth_keeps_the_faces_mean_depth_at_the_domes(centred):
    torch.manual_seed(0)
    layer = FaceLayer(8, 32, pivot=(0.0, 0.1, 0.0), centred_depth=centred)
    layers = torch.randn(4, CANONICAL_CHANNELS, 32, 32)
    layers[:, 3] = 2 * layers[:, 3] - 4  # a net that sinks every head (the residual's bound is -DEPTH_SCALE)
    depth = layer.canonical(layers)["head_depth"][:, 0]
    core = layer.places[0, 0].bool()
    residual = (depth - layer.dome[0, 0])[:, core]  # [4, pixels of the head's core]
    if centred:  # shaped, not sunk: mean 0 over the core, yet different from pixel to pixel
        assert residual.mean(1).abs().max() < 1e-5
        assert residual.std(1).min() > 0.01
    else:
        assert residual.mean(1).max() < -0.1  # the uncentred layer lets the whole face sink
    with pytest.raises(ValueError, match="centred_depth.*needs generator.face3d"):
        GeneratorConfig(centred_depth=True)


def test_a_pose_marginal_layer_runs_under_bfloat16_autocast_as_in_float32():
    # On a GPU the trainer runs G under bfloat16 autocast: the head then reads in bfloat16, and the
    # float32 running statistics must still update (a first version failed here in lerp_).
    layer, twin = _marginal_layer(), _marginal_layer()
    w = torch.randn(16, 4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        values = layer.pose_values(w)
    assert layer.pose_mean.dtype == torch.float32 and values["yaw"].dtype == torch.float32
    exact = twin.pose_values(w)
    assert torch.allclose(values["yaw"], exact["yaw"], atol=1.5)  # degrees; bfloat16 keeps 8 bits
    assert torch.allclose(layer.pose_var, twin.pose_var, rtol=0.02)


def test_the_renderer_lights_highlight_matches_a_per_pixel_loop_of_the_renderers_formula():
    """With gloss and view directions, the renderer's Blinn-Phong term (shininess 16, scaled by the key
    light's intensity, only where the light reaches) adds in linear RGB before the warmth and the gamma."""
    from stylevid.data.synthetic import shade  # the renderer's own constants

    light_net = RendererLight(4)
    torch.manual_seed(2)
    albedo = torch.rand(2, 3, 3, 4)
    forward = torch.tensor([0, 0, 1.0])[:, None, None]  # mostly towards the camera: highlights happen
    normal = torch.nn.functional.normalize(torch.randn(2, 3, 3, 4) + 1.5 * forward, dim=1)
    view = torch.nn.functional.normalize(torch.randn(1, 3, 3, 4) * 0.2 + forward, dim=1)
    gloss = torch.rand(2, 1, 3, 4) * 0.2
    light = {
        "azimuth": torch.tensor([25.0, -50.0]),
        "elevation": torch.tensor([15.0, 35.0]),
        "intensity": torch.tensor([1.4, 0.7]),
        "ambient": torch.tensor([0.25, 0.4]),
        "warmth": torch.tensor([-0.5, 0.8]),
    }
    ours = light_net.shade(albedo, normal, light, gloss, view)
    assert not torch.allclose(ours, light_net.shade(albedo, normal, light))  # the highlight shows
    for b in range(2):
        az, el = math.radians(light["azimuth"][b]), math.radians(light["elevation"][b])
        lx, ly, lz = math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)
        intensity = float(light["intensity"][b])
        for i in range(3):
            for j in range(4):
                n = normal[b, :, i, j].tolist()
                v = view[0, :, i, j].tolist()
                cos = n[0] * lx + n[1] * ly + n[2] * lz
                diffuse = min(max((cos + shade._WRAP) / (1 + shade._WRAP), 0), 1)
                sky = float(light["ambient"][b]) * (0.7 + 0.3 * n[1])
                h = (lx + v[0], ly + v[1], lz + v[2])
                facing = min(max(sum(a * c for a, c in zip(n, h, strict=True)) / math.hypot(*h), 0), 1)
                specular = float(gloss[b, 0, i, j]) * facing**16 * (cos > 0)
                for c in range(3):
                    gain = 1 + float(light["warmth"][b]) * shade._WARMTH[c]
                    diffused = (sky + intensity * diffuse) * float(albedo[b, c, i, j]) ** 2
                    energy = diffused + intensity * specular
                    want = math.sqrt(min(max(energy * gain, 1e-4), 1))
                    assert float(ours[b, c, i, j]) == pytest.approx(want, abs=1e-5)


def test_the_view_directions_point_from_the_pivots_plane_to_the_camera():
    layer = FaceLayer(8, 16, camera_distance=4.0)
    to_camera = torch.cat([-layer.xy, torch.full_like(layer.xy[..., :1], 4.0)], -1)  # camera - point
    view = layer.view[0].permute(1, 2, 0)
    assert torch.allclose(view.norm(dim=-1), torch.ones(16, 16), atol=1e-6)
    assert torch.linalg.cross(view, to_camera).abs().max() < 1e-5  # parallel ...
    assert ((view * to_camera).sum(-1) > 0).all()  # ... and the same way


def test_the_body_shape_is_the_renderers_neck_and_shoulders():
    """The oracle: the renderer's own neck and shoulder ellipsoids of a head of average width. Every pixel
    of the body's depth map inside either outline is a point on one of them and inside neither (the nearer
    surface); without body_shape the body starts flat."""
    from stylevid.data.synthetic.trace import VIEW_HALF

    pivot = (0.0, 0.1, 0.0)
    layer = FaceLayer(8, 128, pivot=pivot, body_shape=True)
    face = face_of(np.full(20, 0.5, np.float32))
    neck, shoulders = face.shapes["neck"], face.shapes["shoulders"]
    x, y = layer.xy[..., 0], layer.xy[..., 1]
    z = layer.body_dome[0, 0]
    world = torch.stack([x - pivot[0], y - pivot[1], z - pivot[2]], -1).reshape(-1, 3).numpy() * VIEW_HALF
    shapes = {"neck": neck, "shoulders": shoulders}
    level = {k: np.linalg.norm(e.local(world), axis=-1) for k, e in shapes.items()}
    # At the ellipsoid's centre depth: inside the outline the frontal camera sees.
    flat = {
        k: np.linalg.norm(e.local(world * [1, 1, 0] + e.center * [0, 0, 1]), axis=-1)
        for k, e in shapes.items()
    }
    seen = (flat["neck"] < 0.97) | (flat["shoulders"] < 0.97)  # pixels well inside an outline
    assert seen.sum() > 2000
    # The smaller of the two levels is 1: on one surface, and (no level below 1) inside neither. A depth
    # that took the farther surface would lie inside the nearer ellipsoid, its level well below 1.
    nearest = np.minimum(level["neck"], level["shoulders"])[seen]
    assert np.abs(nearest - 1).max() < 0.03
    # The light shades it: the neck's sides face outwards, the shoulders' tops upwards.
    normal = layer.canonical(torch.zeros(1, CANONICAL_CHANNELS, 128, 128))["body_normal"][0]

    def pixel(u, v):
        return int((1 - v) / 2 * 128), int((u + 1) / 2 * 128)

    assert normal[0][pixel(-0.25, -0.5)] < -0.5 and normal[0][pixel(0.25, -0.5)] > 0.5
    assert normal[1][pixel(0.6, -0.8)] > 0.5 and normal[1][pixel(-0.6, -0.8)] > 0.5
    assert FaceLayer(8, 32).body_dome.abs().max() == 0


def test_the_highlight_and_the_body_shape_are_face_layer_settings_of_the_renderers_light():
    with pytest.raises(ValueError, match="specular.*needs generator.face3d"):
        GeneratorConfig(specular=True)
    with pytest.raises(ValueError, match="body_shape.*needs generator.face3d"):
        GeneratorConfig(body_shape=True)
    with pytest.raises(ValueError, match="specular.*light='sh'"):
        GeneratorConfig(face3d=True, light="sh", specular=True)
    with pytest.raises(ValueError, match="specular.*light='sh'"):
        FaceLayer(8, 16, light="sh", specular=True)
    with pytest.raises(ValueError, match="both gloss and the view"):
        RendererLight(4).shade(
            torch.rand(1, 3, 2, 2), torch.rand(1, 3, 2, 2), {}, gloss=torch.rand(1, 1, 2, 2)
        )
    # A layer with the highlight renders brighter where the light glints, never darker.
    torch.manual_seed(0)
    layers = torch.randn(2, CANONICAL_CHANNELS, 32, 32)
    styles = torch.randn(2, 1, 8)
    outs = []
    for specular in (False, True):
        torch.manual_seed(1)
        layer = FaceLayer(8, 32, specular=specular)
        outs.append(layer(layers, styles, styles)[0])
    assert (outs[1] >= outs[0] - 1e-6).all() and (outs[1] > outs[0] + 1e-3).any()
