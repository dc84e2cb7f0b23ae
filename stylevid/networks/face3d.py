"""The 3D-aware face layer: a canonical symmetric face, turned in 3D by the pose, lit by a physical light.

With `GeneratorConfig.face3d` the identity code paints, once per video and facing the camera, a head
(albedo, depth, silhouette) and a body (the same three; it does not turn, as a neck and shoulders stay
while the head turns). The pose code gives yaw, pitch and roll in degrees through a bounded head; the
canonical head is reprojected by that rotation with perspective and occlusion by marching each pixel's
ray through the depth map (grid_sample, so it runs wherever torch does). The lighting code gives a
physical light (the synthetic renderer's family or low-order spherical harmonics) whose parameters live
in bounded physical ranges, so it cannot be dimmed away and its energy moved into the albedo. The
silhouettes are binary in the forward pass (a straight-through estimator passes the sigmoid's gradient),
and a [1, 2, 1] blur of the frame's alpha gives the outline a thin antialiased edge: opaque inside the
head, clear outside. Each silhouette
starts from a prior shape and keeps its place: the head always covers a core around the pivot, the body
lies below the chin.

Coordinates: x to the image's right, y up, z towards the camera, in half frame widths; the camera sits
at (0, 0, camera_distance) looking along -z, and the head turns about `pivot`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stylevid.networks.layers import FullyConnected, full_precision
from stylevid.shapes import assert_shape

POSE_NAMES = ("yaw", "pitch", "roll")
# The head's angles are bounded at about 1.5 times the synthetic data's range (yaw +-46, pitch +-20,
# roll +-14 degrees): wide enough for real footage, and a turn can never wrap round.
POSE_LIMITS = {"yaw": (-70.0, 70.0), "pitch": (-35.0, 35.0), "roll": (-30.0, 30.0)}
POSE_QUANTILES = 256  # the data's pose quantiles a pose_marginal face layer stores
POSE_MOMENTUM = 0.05  # of its running statistics of the pose head's readings
MIN_POSE_BATCH = 16  # fewer readings than this use the running statistics, even while training
# The synthetic renderer's light family (stylevid/data/synthetic/shade.py) in the generator's units:
# each parameter within a physical range a little wider than the data's, so the light can neither
# vanish (its energy moved into the albedo) nor grow without bound.
RENDERER_LIGHT_LIMITS = {
    "azimuth": (-80.0, 80.0),  # degrees, > 0: light from the image's right
    "elevation": (-30.0, 60.0),  # degrees, > 0: from above
    "intensity": (0.5, 1.6),  # of the key light
    "ambient": (0.1, 0.55),
    "warmth": (-1.2, 1.2),  # -1 bluish ... +1 orange
}
# The values that are angles: degrees in the face layer and its controls, radians in the renderer's tables.
ANGLE_NAMES = (*POSE_NAMES, "azimuth", "elevation")
# Real faces: second-order spherical harmonics with the constant term fixed to 1 (the light's total is
# fixed: a brighter face is a brighter albedo), a dominant direction and its strength, the second-order
# terms bounded, and a colour.
SH_LIGHT_LIMITS = {
    "azimuth": (-80.0, 80.0),
    "elevation": (-45.0, 60.0),
    "strength": (0.0, 1.0),  # first-order energy relative to the constant term
}
WRAP = 0.15  # the renderer's wrap-around of the diffuse term, as through skin
WARMTH_GAINS = (0.25, 0.03, -0.3)  # the renderer's RGB gain per unit of warmth
SKY = (0.7, 0.3)  # the renderer's ambient: 0.7 + 0.3 * n_y (mostly from above)
# The renderer's highlight (Blinn-Phong, shininess 16, scaled by the key light's intensity) on skin, with
# its gloss; the body (mostly a matte shirt) has none. It adds light that no albedo can take back
# (generator.specular; off in synth64: docs/results.md).
SKIN_GLOSS = 0.06
SHININESS = 16
MARCH_STEPS = 16  # samples along each ray through the depth range
REFINE_STEPS = 6  # false-position steps that narrow the bracket of the first hit
DEPTH_RANGE = 1.0  # the surface lies within +-DEPTH_RANGE of the pivot's plane
DOME_HEIGHT = 0.6  # the depth every head starts from (the learned depth adds at most DEPTH_SCALE)
# The dome's half-axes in x and y: its depth fits an average synthetic head's face (within 0.05 at the
# eyes, the mouth and the chin; the first dome, on the heads' outline (0.55, 0.72), lay 0.12 too low at
# the mouth, so a turned mouth moved 3 pixels less than the renderer's). It reaches past the silhouette
# (transparent there), which leaves room for hair over the cranium.
DOME_SHAPE = (0.6, 0.9)  # the default of GeneratorConfig.dome, which checkpoints store
DEPTH_SCALE = 0.2  # at most: enough for a nose, too little to turn the dome hollow (a hollow face
# reads as turned the other way, as the first runs' did)
# Every silhouette starts from a prior shape, as the depth starts from the dome: a head around the pivot
# (half-axes in half frame widths) and a body below it. Without them the background branch, which can
# paint anything, took the faces over in the first kimg while the silhouettes stayed empty.
HEAD_SHAPE = (0.5, 0.65)
BODY_SHAPE = (1.0, 0.55)  # centred BODY_DROP below the pivot
BODY_DROP = 1.35
SILHOUETTE_PRIOR = 4.0  # logit at the shape's centre; 0 on its outline
# And each is held to its place: the head always covers a core around the pivot, and the body, which
# does not turn, lies only below the chin. With a free body layer G painted the faces into it (a still
# canvas) and let the head shrink to nothing within one kimg.
HEAD_CORE = (0.45, 0.6)  # half-axes of the part of the head every silhouette covers: every synthetic
# head is wider (0.47-0.56) and taller (0.61-0.69); with a smaller core G shrank the head to the core
CHIN_DROP = 0.5  # the body lies this far below the pivot and lower
CLIFF = 0.1  # a hit this far (half frame widths) below the head's surface is on the silhouette's cliff
# A face drawn into every canonical head albedo before identity paints its own, as a 3D morphable model
# starts from its mean texture: without it the built-in model's heads had no eyes, nose or mouth after
# 20 kimg, and a featureless symmetric dome looks much the same turned as frontal (the evaluation probes
# read 0.37 of a set yaw), so nothing asked G to turn its heads as far as the data's. Where the synthetic
# renderer paints its features on a frontal head of average proportions (stylevid/data/synthetic/head.py,
# shade.py; checked against its landmarks in tests/core/test_face3d.py), in half frame widths from the
# pivot, with their logit offsets (R, G, B) to the albedo. Identity's own albedo adds to them and may
# paint them out.
TEMPLATE_EYE = (0.217, 0.011)  # the subject's left eye; the right one is its mirror image
TEMPLATE_EYE_SHAPE = (0.096, 0.048)  # the eye's half-axes; its iris and pupil a disc of TEMPLATE_IRIS
TEMPLATE_IRIS = 0.04
TEMPLATE_BROW = (0.217, 0.17, 0.125, 0.025)  # centre x, y, half-length, half-thickness
TEMPLATE_NOSTRIL = (0.05, -0.221, 0.03)  # centre x, y, radius
TEMPLATE_MOUTH = (-0.445, 0.152, 0.045)  # centre y, half-width, half-height of the lips
TEMPLATE_LOGITS = {
    "sclera": (0.8, 0.8, 0.8),
    "iris": (-3.0, -3.0, -3.0),
    "brow": (-2.0, -2.0, -2.0),
    "nostril": (-1.2, -1.2, -1.2),
    "lips": (-0.2, -1.1, -0.9),
    "mouth_line": (-1.5, -1.5, -1.5),
}
# The body's starting depth with `body_shape`: the renderer's neck and shoulders (two ellipsoids; the neck
# of an average head's width) in half frame widths from the pivot: centre (y, z) and half-axes (x, y, z).
# Without it (generator.body_shape; off in synth64: docs/results.md) the body is a flat sheet that every
# light falls on alike, where the renderer's shoulders are shaded by it.
NECK = ((-0.833, -0.08), (0.287, 0.633, 0.257))
SHOULDERS = ((-1.32, -0.2), (1.333, 0.507, 0.413))
CANONICAL_CHANNELS = 10  # head albedo 3, depth 1, silhouette 1; body albedo 3, depth 1, silhouette 1


def rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Head-to-camera rotations [..., 3, 3] from angles in radians: nod (pitch) first, then turn, then tilt.

    yaw > 0 turns the nose to the image's right, pitch > 0 lifts it, roll > 0 tilts the head
    counter-clockwise on screen: the synthetic renderer's convention (data/synthetic/head.py).
    """
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    shape = (*yaw.shape, 3, 3)
    turn = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(shape)
    nod = torch.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], -1).reshape(shape)
    tilt = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(shape)
    return tilt @ turn @ nod


def _bounded(raw: torch.Tensor, limits: tuple[float, float]) -> torch.Tensor:
    low, high = limits
    return low + (high - low) * torch.sigmoid(raw)


def quantile(table: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """A distribution's values at levels in [0, 1] (any shape), from its quantiles table [Q] at (i + 0.5) / Q,
    linearly interpolated (the ends held beyond the table's first and last levels)."""
    at = (levels * len(table) - 0.5).clamp(0, len(table) - 1)
    low = at.floor().long().clamp_max(len(table) - 2)
    return torch.lerp(table[low], table[low + 1], at - low)


def _symmetric(x: torch.Tensor) -> torch.Tensor:
    """The mirror-symmetric part of images [B, C, H, W]: the same left and right, by construction."""
    return (x + x.flip(-1)) / 2


def face_template(resolution: int, pivot: tuple[float, float, float]) -> torch.Tensor:
    """The drawn face's logit offsets [3, R, R] to the canonical head albedo: eyes (white, a dark iris),
    brows, nostrils and lips with the line between them, mirror-symmetric about the pivot's column."""
    axis = (torch.arange(resolution) + 0.5) / resolution * 2 - 1
    y, x = torch.meshgrid(-axis, axis, indexing="ij")
    x, y = (x - pivot[0]).abs(), y - pivot[1]  # |x|: one side drawn, the other its mirror image

    texel = 2 / resolution

    def ramp(inside: torch.Tensor) -> torch.Tensor:
        # 1 where `inside` (a signed distance in texels, > 0 inside) is over half a texel, 0 under minus
        # half, linear between: a feature narrower than a texel still shows at part strength instead of
        # vanishing between pixel centres.
        return (inside + 0.5).clamp(0, 1)

    def blob(cx, cy, rx, ry):
        q = ((x - cx) / rx).square() + ((y - cy) / ry).square()
        return ramp((1 - q) * min(rx, ry) / texel)  # 1 - q over its slope at the outline: about texels

    eye = blob(*TEMPLATE_EYE, *TEMPLATE_EYE_SHAPE)
    iris = eye * blob(*TEMPLATE_EYE, TEMPLATE_IRIS, TEMPLATE_IRIS)
    bx, by, half_length, thick = TEMPLATE_BROW
    arch = by + 0.03 * (1 - ((x - bx) / half_length).square())  # highest over the eye's middle
    brow = ramp((thick - (y - arch).abs()) / texel) * ramp((half_length - (x - bx).abs()) / texel)
    nx, ny, nr = TEMPLATE_NOSTRIL
    nostril = blob(nx, ny, nr, nr)
    my, mw, mh = TEMPLATE_MOUTH
    lips = blob(0.0, my, mw, mh)
    line = lips * ramp((texel / 2 - (y - my).abs()) / texel)
    amounts = {
        "sclera": eye - iris,
        "iris": iris,
        "brow": brow,
        "nostril": nostril,
        "lips": lips - line,
        "mouth_line": line,
    }
    out = torch.zeros(3, resolution, resolution)
    for name, amount in amounts.items():
        out += torch.tensor(TEMPLATE_LOGITS[name])[:, None, None] * amount
    return out


def body_depth(xy: torch.Tensor, pivot: tuple[float, float, float]) -> torch.Tensor:
    """The renderer's neck and shoulders as a depth map [R, R] over pixel positions xy [R, R, 2]: the nearer
    of the two ellipsoids' front surfaces, and each one's centre plane beyond its outline (so the map is
    continuous; the body's silhouette says which of it is seen)."""
    x, y = xy[..., 0] - pivot[0], xy[..., 1] - pivot[1]
    surfaces = []
    for (cy, cz), (rx, ry, rz) in (NECK, SHOULDERS):
        inside = 1 - (x / rx).square() - ((y - cy) / ry).square()
        surfaces.append(pivot[2] + cz + rz * inside.clamp_min(0).sqrt())
    return torch.maximum(*surfaces)


def binary(logit: torch.Tensor) -> torch.Tensor:
    """A silhouette in {0, 1} in the forward pass, with the sigmoid's gradient (straight through)."""
    soft = torch.sigmoid(logit)
    return soft + ((logit > 0).to(soft.dtype) - soft).detach()


def unit(x: torch.Tensor) -> torch.Tensor:
    """x [B, 3, H, W] scaled to unit length along dim 1 (F.normalize's strided norm is slow on the CPU)."""
    return x * x.square().sum(1, keepdim=True).clamp_min(1e-12).rsqrt()


def normals_of(depth: torch.Tensor) -> torch.Tensor:
    """Unit normals [B, 3, H, W] (x right, y up, z to the camera) of a depth map [B, 1, H, W] on [-1, 1]²."""
    step = 2 / depth.shape[-1]
    padded = F.pad(depth, (1, 1, 1, 1), mode="replicate")
    dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / (2 * step)
    dy = (padded[..., :-2, 1:-1] - padded[..., 2:, 1:-1]) / (2 * step)  # rows run down, y up
    return unit(torch.cat([-dx, -dy, torch.ones_like(dx)], dim=1))


class RendererLight(nn.Module):
    """Lighting styles [B, w] -> the synthetic renderer's light (azimuth, elevation in degrees, intensity,
    ambient, warmth), and its shading of albedo and normals."""

    names = tuple(RENDERER_LIGHT_LIMITS)
    limits = RENDERER_LIGHT_LIMITS

    def __init__(self, w_dim: int):
        super().__init__()
        self.head = FullyConnected(w_dim, len(self.names))
        self.register_buffer("gains", torch.tensor(WARMTH_GAINS), persistent=False)

    def values(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = self.head(w.float())
        return {name: _bounded(raw[:, i], self.limits[name]) for i, name in enumerate(self.names)}

    def shade(
        self,
        albedo: torch.Tensor,
        normal: torch.Tensor,
        light: dict[str, torch.Tensor],
        gloss: torch.Tensor | None = None,
        view: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """albedo [B, 3, H, W] in [0, 1], unit normals [B, 3, H, W] -> sRGB [B, 3, H, W] in [0, 1].

        With gloss [B, 1, H, W] and unit directions to the camera view [1, 3, H, W], the renderer's
        highlight is added too."""
        if (gloss is None) != (view is None):
            raise ValueError("the highlight needs both gloss and the view directions (or neither)")
        az, el = torch.deg2rad(light["azimuth"]), torch.deg2rad(light["elevation"])
        direction = torch.stack([az.sin() * el.cos(), el.sin(), az.cos() * el.cos()], 1)[..., None, None]
        cos = (normal * direction).sum(1, keepdim=True)
        diffuse = ((cos + WRAP) / (1 + WRAP)).clamp(0, 1)
        sky = light["ambient"][:, None, None, None] * (SKY[0] + SKY[1] * normal[:, 1:2])
        intensity = light["intensity"][:, None, None, None]
        linear = (sky + intensity * diffuse) * albedo.square()
        if gloss is not None:
            half = unit(direction + view)
            facing = (normal * half).sum(1, keepdim=True).clamp(0, 1)
            linear = linear + intensity * gloss * facing.pow(SHININESS) * (cos > 0).to(cos.dtype)
        gains = 1 + light["warmth"][:, None, None, None] * self.gains[:, None, None]
        # Gamma 2 as the renderer: light adds in linear RGB (the albedo squared), then the square root.
        return (linear * gains).clamp(1e-4, 1).sqrt()


class SphericalHarmonicsLight(nn.Module):
    """Lighting styles [B, w] -> a second-order spherical-harmonics light for real faces.

    The constant term is 1: how bright a face is belongs to its albedo, how the light falls across it
    to the lighting code. Named values: azimuth and elevation (degrees) and strength of the first-order
    (directional) part; the five second-order terms and an RGB colour are bounded but not named.
    """

    names = tuple(SH_LIGHT_LIMITS)
    limits = SH_LIGHT_LIMITS

    def __init__(self, w_dim: int):
        super().__init__()
        self.head = FullyConnected(w_dim, 3 + 5 + 3)

    def values(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = self.head(w.float())
        out = {name: _bounded(raw[:, i], self.limits[name]) for i, name in enumerate(self.names)}
        out["second_order"] = 0.3 * torch.tanh(raw[:, 3:8])
        out["colour"] = torch.exp(0.2 * torch.tanh(raw[:, 8:11]))
        return out

    def shade(
        self, albedo: torch.Tensor, normal: torch.Tensor, light: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        az, el = torch.deg2rad(light["azimuth"]), torch.deg2rad(light["elevation"])
        direction = torch.stack([az.sin() * el.cos(), el.sin(), az.cos() * el.cos()], 1)[..., None, None]
        x, y, z = normal.unbind(1)
        second = torch.stack([x * y, y * z, 3 * z * z - 1, x * z, x * x - y * y], 1)
        energy = (
            1
            + light["strength"][:, None, None, None] * (normal * direction).sum(1, keepdim=True)
            + (light["second_order"][:, :, None, None] * second).sum(1, keepdim=True)
        )
        rgb = albedo * energy.clamp_min(0) * light["colour"][:, :, None, None]
        return rgb.clamp(0, 1)


LIGHTS = {"renderer": RendererLight, "sh": SphericalHarmonicsLight}


class FaceLayer(nn.Module):
    """Canonical layers [N, 10, R, R] (per video) + pose and lighting styles [N, T, w] -> foreground.

    Returns the lit foreground [N * T, 3, R, R] in [-1, 1], its alpha [N * T, 1, R, R] and the physical
    values of every frame (pose angles in degrees, light parameters) as [N, T] tensors.
    """

    def __init__(
        self,
        w_dim: int,
        resolution: int,
        light: str = "renderer",
        camera_distance: float = 16 / 3,
        pivot: tuple[float, float, float] = (0.0, 0.0, 0.0),
        symmetric: bool = True,
        binary_alpha: bool = True,
        learned_depth: bool = True,
        template: bool = False,
        dome: tuple[float, float] = DOME_SHAPE,
        pose_marginal: bool = False,
        centred_depth: bool = False,
        specular: bool = False,
        body_shape: bool = False,
    ):
        super().__init__()
        if light not in LIGHTS:
            raise ValueError(f"generator.light={light!r}; choose one of {', '.join(LIGHTS)}")
        if specular and light != "renderer":
            raise ValueError(
                f"generator.specular is the renderer light's highlight; generator.light={light!r}"
            )
        self.specular, self.body_shape = specular, body_shape
        self.w_dim, self.resolution, self.camera_distance = w_dim, resolution, float(camera_distance)
        self.symmetric, self.binary_alpha, self.learned_depth = symmetric, binary_alpha, learned_depth
        self.template = template
        self.pose_head = FullyConnected(w_dim, len(POSE_NAMES))
        self.pose_marginal, self.centred_depth = pose_marginal, centred_depth
        if pose_marginal:
            # The data's pose quantiles (set by the trainer from the data's stated distribution, stored in
            # the checkpoint; until then evenly spread over the bounds) and the head's running statistics.
            levels = (torch.arange(POSE_QUANTILES) + 0.5) / POSE_QUANTILES
            spread = [low + (high - low) * levels for low, high in (POSE_LIMITS[n] for n in POSE_NAMES)]
            self.register_buffer("pose_quantiles", torch.stack(spread))  # [3, Q], degrees
            self.register_buffer("pose_mean", torch.zeros(len(POSE_NAMES)))
            self.register_buffer("pose_var", torch.ones(len(POSE_NAMES)))
        self.light = LIGHTS[light](w_dim)
        axis = (torch.arange(resolution) + 0.5) / resolution * 2 - 1
        y, x = torch.meshgrid(-axis, axis, indexing="ij")  # rows run down, y up
        self.register_buffer("xy", torch.stack([x, y], dim=-1), persistent=False)  # [R, R, 2]
        self.register_buffer("pivot", torch.tensor(pivot, dtype=torch.float32), persistent=False)
        # The depth every head starts from: a paraboloid over an ellipse about the pivot, falling to 0 at
        # its outline, so a turned head shows its sides down to the outline (a flat-topped dome showed a
        # cliff there, which no ray may hit: the turned head's near side was cut away). Not half an
        # ellipsoid: its infinitely steep rim, sampled on the grid, gave turned heads ragged edges.
        inside = 1 - ((x - pivot[0]) / dome[0]) ** 2 - ((y - pivot[1]) / dome[1]) ** 2
        dome = DOME_HEIGHT * inside.clamp_min(0)
        self.register_buffer("dome", dome[None, None], persistent=False)
        body = body_depth(self.xy, pivot) if body_shape else torch.zeros_like(dome)
        self.register_buffer("body_dome", body[None, None], persistent=False)
        # Unit directions from each pixel's point on the pivot's plane to the camera.
        to_camera = torch.cat([-self.xy, torch.full_like(self.xy[..., :1], self.camera_distance)], -1)
        self.register_buffer("view", unit(to_camera.permute(2, 0, 1)[None]), persistent=False)

        def ellipse(cx, cy, rx, ry):
            return SILHOUETTE_PRIOR * (1 - ((x - cx) / rx) ** 2 - ((y - cy) / ry) ** 2).clamp_min(-1)

        head = ellipse(pivot[0], pivot[1], *HEAD_SHAPE)
        body = ellipse(pivot[0], pivot[1] - BODY_DROP, *BODY_SHAPE)
        self.register_buffer("silhouettes", torch.stack([head, body])[:, None], persistent=False)
        core = (ellipse(pivot[0], pivot[1], *HEAD_CORE) > 0).float()
        below = (y < pivot[1] - CHIN_DROP).float()
        self.register_buffer("places", torch.stack([core, below])[:, None], persistent=False)
        drawn = face_template(resolution, pivot) if template else torch.zeros(3, resolution, resolution)
        self.register_buffer("drawn_face", drawn[None], persistent=False)
        taps = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("edge_filter", (taps[:, None] * taps / 16)[None, None], persistent=False)

    @property
    def light_names(self) -> tuple[str, ...]:
        return self.light.names

    def set_pose_quantiles(self, quantiles: dict[str, torch.Tensor]) -> None:
        """Store the data's pose quantiles (name -> [POSE_QUANTILES] degrees, at levels (i + 0.5) / Q) that a
        pose_marginal layer maps its standardised readings through."""
        if not self.pose_marginal:
            raise ValueError("set_pose_quantiles needs a face layer with generator.pose_marginal")
        table = torch.stack([torch.as_tensor(quantiles[name], dtype=torch.float32) for name in POSE_NAMES])
        assert_shape(table, list(self.pose_quantiles.shape), "pose quantiles")
        self.pose_quantiles.copy_(table)

    def pose_values(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pose styles [..., w] -> yaw, pitch, roll in degrees, each [...].

        With pose_marginal, the head's readings are standardised (over the batch while training, as batch
        normalisation does, else by the running statistics) and mapped through the data's quantile
        function: the values' spread is the data's by construction, so G cannot narrow the turns it draws.
        """
        raw = self.pose_head(w.float())
        if not self.pose_marginal:
            return {name: _bounded(raw[..., i], POSE_LIMITS[name]) for i, name in enumerate(POSE_NAMES)}
        raw = raw.float()  # under autocast the head reads in bfloat16; its statistics stay float32
        flat = raw.reshape(-1, raw.shape[-1])
        if self.training and len(flat) >= MIN_POSE_BATCH:
            mean, var = flat.mean(0), flat.var(0, unbiased=False)
            with torch.no_grad():
                self.pose_mean.lerp_(mean.detach(), POSE_MOMENTUM)
                self.pose_var.lerp_(var.detach(), POSE_MOMENTUM)
        else:
            mean, var = self.pose_mean, self.pose_var
        levels = torch.special.ndtr((raw - mean) / (var + 1e-8).sqrt())
        return {name: quantile(self.pose_quantiles[i], levels[..., i]) for i, name in enumerate(POSE_NAMES)}

    def light_values(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """Lighting styles [..., w] -> the light's parameters, each [...] (and unnamed extras)."""
        lead = w.shape[:-1]
        values = self.light.values(w.reshape(-1, w.shape[-1]))
        return {k: v.reshape(*lead, *v.shape[1:]) for k, v in values.items()}

    def values(
        self, pose: torch.Tensor, lighting: torch.Tensor, settings: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Pose and lighting styles [N, T, w] -> the physical values of every frame, name -> [N, T] (the
        SH light's unnamed extras with trailing dimensions), with the settings [N, T] in place of the
        heads' values where they are not NaN."""
        values = {**self.pose_values(pose), **self.light_values(lighting)}
        for name, value in (settings or {}).items():
            if name not in values or name in ("second_order", "colour"):
                known = ", ".join((*POSE_NAMES, *self.light_names))
                raise ValueError(f"{name!r} is not a pose or light value of this generator; it has {known}")
            values[name] = torch.where(torch.isnan(value), values[name], value.to(values[name].dtype))
        return values

    def canonical(self, layers: torch.Tensor) -> dict[str, torch.Tensor]:
        """The painted layers [N, 10, R, R] as named maps: albedo in [0, 1], depth, silhouettes, normals."""
        assert_shape(layers, [None, CANONICAL_CHANNELS, self.resolution, self.resolution], "canonical layers")
        layers = layers.float()
        if self.symmetric:
            layers = _symmetric(layers)
        mask = binary if self.binary_alpha else torch.sigmoid
        out = {}
        for k, (part, c) in enumerate((("head", layers[:, :5]), ("body", layers[:, 5:]))):
            depth = self.dome if part == "head" else self.body_dome
            if self.learned_depth or part == "body":
                # A quarter of the raw output: an untrained net's noise would otherwise make a rough
                # surface whose speckled shading the discriminator sees at once.
                residual = DEPTH_SCALE * torch.tanh(c[:, 3:4] / 4)
                if self.centred_depth and part == "head":
                    # Identity shapes the face but cannot sink it as a whole: over the head's core the
                    # residual's mean is 0, so the face stands as far forward as the dome's.
                    core = self.places[0]
                    residual = residual - (residual * core).sum((-1, -2), keepdim=True) / core.sum()
                depth = depth + residual
            out[f"{part}_albedo"] = torch.sigmoid(c[:, :3] + self.drawn_face if part == "head" else c[:, :3])
            out[f"{part}_depth"] = depth.expand(len(c), -1, -1, -1)
            alpha = mask(c[:, 4:5] + self.silhouettes[k])
            place = self.places[k]
            out[f"{part}_alpha"] = torch.maximum(alpha, place) if part == "head" else alpha * place
            out[f"{part}_normal"] = normals_of(out[f"{part}_depth"])
        return out

    def turn(
        self, maps: torch.Tensor, depth: torch.Tensor, rot: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reproject canonical maps [B, C, R, R] with depth [B, 1, R, R] by rotations [B, 3, 3].

        Each pixel's ray is marched front to back; the first sample behind the surface and the one
        before it bracket the hit, found by linear interpolation. Returns the maps at the hit
        [B, C, R, R], whether the ray hit [B, 1, R, R] (0 where it passed behind the whole range) and
        the hit's depth in the canonical frame [B, 1, R, R].
        """
        b, r, d = len(rot), self.resolution, self.camera_distance
        flip = torch.tensor([1.0, -1.0], device=rot.device)  # grid_sample's y runs down

        # Along a pixel's ray the point at depth z is p(z) = (x, y, 0) (d - z) / d + (0, 0, z): linear in z,
        # and so is its position in the canonical head's frame, turned back about the pivot:
        # R^T (p(z) - pivot) + pivot = start + z * slope, both [B, R, R] per component.
        xy0 = torch.cat([self.xy, torch.zeros_like(self.xy[..., :1])], -1)  # [R, R, 3]
        direction = torch.cat([-self.xy / d, torch.ones_like(self.xy[..., :1])], -1)
        start = ((xy0 - self.pivot).reshape(1, -1, 3) @ rot).reshape(b, r, r, 3) + self.pivot
        slope = (direction.reshape(1, -1, 3) @ rot).reshape(b, r, r, 3)
        start, slope = start.unbind(-1), slope.unbind(-1)

        def lookup(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Samples at depths z [B, R, R] or [B, K, R, R] of each pixel's ray: their map positions
            [..., 2] and how far in front of the surface they lie (< 0: behind)."""
            at = (lambda c: c[:, None]) if z.ndim == 4 else (lambda c: c)  # noqa: E731
            x, y, depth_z = (at(s) + z * at(k) for s, k in zip(start, slope, strict=True))
            # The canonical maps are the frontal camera's view: a point's map position is its projection.
            perspective = d / (d - depth_z)
            seen = torch.stack([x * perspective, y * perspective], -1)
            surface = F.grid_sample(
                depth,
                (seen * flip).reshape(b, -1, r, 2),
                mode="bilinear",
                padding_mode="border",
                align_corners=False,
            ).reshape(z.shape)
            return seen, depth_z - surface, depth_z

        # March without gradients to find, per pixel, the first step from in front of the surface to
        # behind it, narrow that bracket by false position; then only its two ends are looked up again,
        # with gradients.
        steps = torch.linspace(DEPTH_RANGE, -DEPTH_RANGE, MARCH_STEPS, device=rot.device, dtype=depth.dtype)
        with torch.no_grad():
            _, gap, _ = lookup(steps[None, :, None, None].expand(b, -1, r, r))
            crossing = (gap[:, :-1] > 0) & (gap[:, 1:] <= 0)  # [B, K-1, R, R]
            # The first crossing's step (argmax over a bool dimension is slow on the CPU); K-1 if none.
            ks = torch.arange(MARCH_STEPS - 1, device=rot.device)[:, None, None]
            index = torch.where(crossing, ks, MARCH_STEPS - 1).amin(1)
            hit = (index < MARCH_STEPS - 1)[:, None]
            index = index.clamp_max(MARCH_STEPS - 2)
            z_a, z_b = steps[index], steps[index + 1]
            gap_a, gap_b = gap.gather(1, index[:, None])[:, 0], gap.gather(1, index[:, None] + 1)[:, 0]
            for _ in range(REFINE_STEPS):
                z_c = z_a + gap_a / (gap_a - gap_b).clamp_min(1e-6) * (z_b - z_a)
                _, gap_c, _ = lookup(z_c)
                front = gap_c > 0
                z_a, gap_a = torch.where(front, z_c, z_a), torch.where(front, gap_c, gap_a)
                z_b, gap_b = torch.where(front, z_b, z_c), torch.where(front, gap_b, gap_c)
        seen_a, gap_a, z_a = lookup(z_a)
        seen_b, gap_b, z_b = lookup(z_b)
        share = (gap_a / (gap_a - gap_b).clamp_min(1e-6)).clamp(0, 1)[..., None]  # [B, R, R, 1]
        # A ray that never reaches the surface looks at the back of the range (masked out by `hit`).
        position = torch.where(hit[:, 0, ..., None], seen_a + share * (seen_b - seen_a), seen_b)
        out = F.grid_sample(
            maps, position * flip, mode="bilinear", padding_mode="border", align_corners=False
        )
        reached = torch.lerp(z_a, z_b, share[..., 0])[:, None]  # the hit's depth in the canonical frame
        return out, hit.to(out.dtype), reached

    def forward(
        self,
        layers: torch.Tensor,
        pose: torch.Tensor,
        lighting: torch.Tensor,
        settings: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """layers [N, 10, R, R], pose and lighting styles [N, T, w]; settings: physical values [N, T]
        that replace the heads' (NaN where a video keeps its own).

        All in float32, autocast or not: angles, ray positions and depths in bfloat16 (8 bits of
        mantissa) would move a hit by a texel and flip silhouettes.
        """
        with full_precision(layers.device):
            return self._forward(layers.float(), pose.float(), lighting.float(), settings)

    def _forward(self, layers, pose, lighting, settings):
        n, steps = pose.shape[:2]
        assert_shape(pose, [len(layers), None, self.w_dim], "pose styles")
        assert_shape(lighting, [n, steps, self.w_dim], "lighting styles")
        values = self.values(pose, lighting, settings)
        canon = self.canonical(layers)
        frames = lambda x: x[:, None].expand(-1, steps, *x.shape[1:]).reshape(n * steps, *x.shape[1:])  # noqa: E731
        rot = rotation(*(torch.deg2rad(values[k]).reshape(-1) for k in POSE_NAMES))  # [N * T, 3, 3]
        maps = torch.cat(
            [canon["head_albedo"], canon["head_alpha"], canon["head_normal"], canon["head_depth"]], 1
        )
        # The surface is the whole dome (the silhouette only says which of it is opaque), and beyond the
        # dome the depth drops behind the range: a turned head shows the part of its silhouette the
        # dome carries, seen at that angle, and nothing beyond the dome can hide the face.
        drop = torch.full_like(canon["head_depth"], -2 * DEPTH_RANGE)
        occluding = torch.where(self.dome > 0, canon["head_depth"], drop)
        turned, hit, reached = self.turn(frames(maps), frames(occluding), rot)
        # The drop at the silhouette is a cliff, which a turned head would show from the side as a
        # curtain hanging from its outline; a hit far below the head's own surface there is no hit.
        on_surface = (reached > turned[:, 7:8] - CLIFF).to(hit.dtype)
        hit = hit * on_surface
        head_albedo, head_alpha = turned[:, :3], turned[:, 3:4] * hit
        head_normal = unit(torch.einsum("bij,bjhw->bihw", rot, turned[:, 4:7]))
        body_alpha = frames(canon["body_alpha"])
        albedo = torch.lerp(frames(canon["body_albedo"]), head_albedo, head_alpha)
        normal = unit(torch.lerp(frames(canon["body_normal"]), head_normal, head_alpha))
        light = {k: v.reshape(n * steps, *v.shape[2:]) for k, v in values.items() if k not in POSE_NAMES}
        if self.specular:
            gloss = SKIN_GLOSS * head_alpha
            rgb = self.light.shade(albedo, normal, light, gloss, self.view)
        else:
            rgb = self.light.shade(albedo, normal, light)
        rgb = rgb * 2 - 1
        alpha = head_alpha + (1 - head_alpha) * body_alpha
        # The silhouettes are binary; a [1, 2, 1] blur gives their outline the thin antialiased edge of
        # the data's (rendered at twice the size and box-filtered), leaving inside and outside exact.
        alpha = F.conv2d(F.pad(alpha, (1, 1, 1, 1), mode="replicate"), self.edge_filter)
        return rgb, alpha, values
