"""The face layer's turn at its best: the renderer's own heads, turned by it, read by the evaluation probes.

    python benchmarks/turn_ceiling.py [--videos 64] [--out build/turn_ceiling] [--threads 1]

The face layer turns one frontal map per person (colour, depth, silhouette) by the pose. How well can
such a turn look like a turned head, painted perfectly? For each of the renderer's reference heads
(benchmarks/face_controls.py's: seeds (22, i), one frame's light and background each) and each yaw of
face_controls' read-back (pitch and roll 0), four frames are read by the evaluation probes:

- renderer: the renderer's own frame at that yaw (the instrument's error);
- turned, true depth: the renderer's frontal frame, its head pixels turned by `FaceLayer.turn` on the
  head's true depth (traced), over the frontal frame's body and the backdrop;
- turned, dome depth: the same on the face layer's dome, the surface G starts every head from;
- turned skin, true outline: the renderer's frame at the yaw with only its skin (cranium, jaw, nose)
  replaced by the true-depth turn's pixels: the outline, hair and ears stay the renderer's.

Three more frames shade the head as the face layer does (its renderer light on the surfaces' albedo and
normals), so that they differ only in the head's geometry:

- traced, layer-lit: the renderer's head at the yaw (the best any head map can do with this light);
- frontal map, layer-lit: the frontal map (albedo, normals, silhouette) turned on the true depth;
- radial map, layer-lit: a map around the whole head instead: per direction from the pivot (longitude
  and latitude), the outermost surface's distance, albedo and normal, baked from the renderer's head and
  turned by marching each ray through the distance map (`turn_radial`). It holds the sides and back a
  frontal map lacks: the layer issue 22's yaw target asks for, before any is trained.

Reported per setting, the probes' mean yaw, and over all settings the mean absolute error (the measure
and target of issue 22's read-back, <= 5 degrees). The light is baked into the frontal colour, so the
turned frames' shading turns with the head. Prints a Markdown table; writes turn_ceiling.json and a
figure of four heads at +20 degrees (columns: the four frames above) to --out.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from face_controls import YAWS, renderer_videos, sweep_figure

from stylevid.data.synthetic.head import face_of, hair_covers
from stylevid.data.synthetic.head import rotation as renderer_rotation
from stylevid.data.synthetic.render import _background_image, check_background, render_frame
from stylevid.data.synthetic.shade import _ALBEDO, surface_normal
from stylevid.data.synthetic.trace import CAMERA, SURFACES, VIEW_HALF, Quadric, camera_rays, place, trace
from stylevid.metrics.probes import load_probes
from stylevid.networks.face3d import FaceLayer, RendererLight, rotation

R = 64
FRAMES = (
    "renderer",
    "turned, true depth",
    "turned, dome depth",
    "turned skin, true outline",
    "traced, layer-lit",
    "frontal map, layer-lit",
    "radial map, layer-lit",
)
LABELS = ("renderer", "true depth", "dome depth", "skin only", "traced, lit", "frontal, lit", "radial, lit")
HEAD = [i for i, s in enumerate(SURFACES) if s[3] == "head"]
SKIN = [i for i, s in enumerate(SURFACES) if s[0] in ("cranium", "jaw", "nose", "right_wing", "left_wing")]
FIGURE_YAW = 20
FIGURE_ROWS = 4
# The head's outer surfaces, which a ray from outside towards the pivot can meet first (index, shape).
OUTER = [(i, s[1]) for i, s in enumerate(SURFACES) if s[3] == "head" and s[2] == 0]
RADIAL_ROWS = 128  # latitudes from the top (+90 degrees) to the bottom; twice as many longitudes
RADIAL_RANGE = 1.2  # a ray is marched this far (half frame widths) in front of and behind the pivot
RADIAL_STEPS = 64
RADIAL_REFINE = 8


def renderer_camera_layer() -> FaceLayer:
    """A face layer with the synthetic renderer's camera in its units (as tests/core/test_face3d.py's)."""
    return FaceLayer(8, R, camera_distance=8 / VIEW_HALF, pivot=(0.0, -float(CAMERA[1]) / VIEW_HALF, 0.0))


def traced(face, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """The renderer's surface index per pixel [R, R] at yaw (degrees) and the head's depth (half frame
    widths, the face layer's units; -2, behind its whole range, where no head is)."""
    rays = camera_rays(R)
    rot = renderer_rotation(math.radians(yaw), 0.0, 0.0)
    t, surface = trace(face, rot, rays, place(face, rot))
    n = np.flatnonzero(np.isin(surface, HEAD))
    depth = np.full(R * R, -2.0, np.float32)
    depth[n] = rays.points(t[n], n)[:, 2] / VIEW_HALF
    return surface.reshape(R, R), depth.reshape(R, R)


def entry(quadric: Quadric, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Where rays from origin [K, 3] along unit direction [K, 3] enter the placed ellipsoid: distance [K],
    inf where they miss it or it lies behind them."""
    oc = origin - quadric.center
    qd, qo = direction @ quadric.matrix, oc @ quadric.matrix
    a, b = np.einsum("ki,ki->k", direction, qd), np.einsum("ki,ki->k", oc, qd)
    disc = b * b - a * (np.einsum("ki,ki->k", oc, qo) - 1)
    t = (-b - np.sqrt(np.maximum(disc, 0))) / a
    return np.where((disc > 0) & (t > 0), t, np.inf)


def surface_look(face, surface: np.ndarray, p: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Albedo [K, 3] and world unit normals [K, 3] (shaded as the renderer's) of the head's surfaces
    (SURFACES indices [K]) at world points p [K, 3] of a head turned by rot (head to world)."""
    albedo, normal = np.zeros((len(p), 3), np.float32), np.zeros((len(p), 3), np.float32)
    placed = place(face, rot)
    for index, (name, _, _, _) in enumerate(SURFACES):
        k = np.flatnonzero(surface == index)
        if len(k):
            normal[k] = surface_normal(placed, index, p[k])
            albedo[k] = _ALBEDO[name](face, p[k] @ rot, name)  # @ rot: world -> head space
    return albedo, normal


def head_looks(face, rot: np.ndarray, rays, t: np.ndarray, surface: np.ndarray) -> torch.Tensor:
    """surface_look of every pixel's head surface in a trace (distances t, surface indices [R²]) of the head
    turned by rot, as maps [1, 6, R, R] (albedo, world normal; 0 where no head)."""
    n = np.flatnonzero(np.isin(surface, HEAD))
    look = np.zeros((R * R, 6), np.float32)
    look[n] = np.concatenate(surface_look(face, surface[n], rays.points(t[n], n), rot), -1)
    return torch.from_numpy(look.T.reshape(1, 6, R, R))


def radial_map(face) -> tuple[np.ndarray, np.ndarray]:
    """The renderer's head around its pivot: per latitude (rows, top to bottom) and longitude (columns,
    -180 to 180 degrees, 0 facing the camera), the outermost surface's distance from the pivot [1, H, 2H]
    (half frame widths) and its albedo and head-space normal [6, H, 2H]."""
    h = RADIAL_ROWS
    lat = (0.5 - (np.arange(h) + 0.5) / h) * math.pi
    lon = ((np.arange(2 * h) + 0.5) / (2 * h) * 2 - 1) * math.pi
    lat, lon = np.meshgrid(lat, lon, indexing="ij")
    out = np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), np.cos(lat) * np.cos(lon)], -1).reshape(-1, 3)
    far = 4.0  # head units: outside every part of the head
    origin, direction = far * out, -out
    best = np.full(len(out), np.inf)
    surface = np.full(len(out), -1)
    still = np.eye(3, dtype=np.float32)
    for index, shape in OUTER:
        t = entry(Quadric.place(face.shapes[shape], still), origin, direction)
        if shape == "hair":
            n = np.flatnonzero(np.isfinite(t))
            t[n[~hair_covers(face, origin[n] + t[n, None] * direction[n])]] = np.inf
        closer = t < best
        best[closer], surface[closer] = t[closer], index
    if not np.isfinite(best).all():
        raise ValueError("a direction from the pivot meets no surface of the head: the pivot lies outside it")
    points = origin + best[:, None] * direction
    albedo, normal = surface_look(face, surface, points, still)
    radius = (far - best) / VIEW_HALF
    looks = np.concatenate([albedo, normal], -1).T.reshape(6, h, 2 * h)
    return radius.reshape(1, h, 2 * h).astype(np.float32), looks.astype(np.float32)


def turn_radial(
    layer: FaceLayer, looks: torch.Tensor, radius: torch.Tensor, rot: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The radial maps looks [B, C, H, 2H] on distances radius [B, 1, H, 2H] (radial_map's layout) seen
    by the face layer's camera with the head turned by rot [B, 3, 3] about its pivot: looks at each
    pixel's first hit [B, C, R, R], whether its ray hit [B, 1, R, R] and the hit's depth [B, 1, R, R].
    Each ray is marched front to back through +-RADIAL_RANGE about the pivot's plane; the first step from
    outside the surface to inside and the one before it bracket the hit, narrowed by bisection."""
    b, r, d = len(rot), layer.resolution, layer.camera_distance

    def lookup(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map positions [B, K, R, R, 2] of the points at depths z [B, K, R, R] of each pixel's ray, and
        their distance outside the surface (< 0: inside)."""
        xy = layer.xy[None, None] * ((d - z) / d)[..., None]
        p = torch.cat([xy, z[..., None]], -1) - layer.pivot  # [B, K, R, R, 3]
        q = torch.einsum("bkhwi,bij->bkhwj", p, rot)  # R^T p: into the head's frame
        distance = q.norm(dim=-1)
        lon = torch.atan2(q[..., 0], q[..., 2]) / math.pi
        lat = torch.asin((q[..., 1] / distance.clamp_min(1e-6)).clamp(-1, 1)) / (math.pi / 2)
        position = torch.stack([lon, -lat], -1)  # grid_sample's y runs down, the maps' rows from the top
        surface = F.grid_sample(
            radius, position.reshape(b, -1, r, 2), mode="bilinear", padding_mode="border", align_corners=False
        ).reshape(z.shape)
        return position, distance - surface

    steps = torch.linspace(RADIAL_RANGE, -RADIAL_RANGE, RADIAL_STEPS)
    with torch.no_grad():
        _, gap = lookup(steps[None, :, None, None].expand(b, -1, r, r))
        crossing = (gap[:, :-1] > 0) & (gap[:, 1:] <= 0)
        ks = torch.arange(RADIAL_STEPS - 1)[:, None, None]
        index = torch.where(crossing, ks, RADIAL_STEPS - 1).amin(1)
        hit = index < RADIAL_STEPS - 1
        index = index.clamp_max(RADIAL_STEPS - 2)
        z_a, z_b = steps[index], steps[index + 1]
        for _ in range(RADIAL_REFINE):
            z_c = (z_a + z_b) / 2
            _, gap_c = lookup(z_c[:, None])
            outside = gap_c[:, 0] > 0
            z_a, z_b = torch.where(outside, z_c, z_a), torch.where(outside, z_b, z_c)
        reached = (z_a + z_b) / 2
        position, _ = lookup(reached[:, None])
    out = F.grid_sample(looks, position[:, 0], mode="bilinear", padding_mode="border", align_corners=False)
    return out, hit[:, None].to(out.dtype), reached[:, None]


def lit(light: RendererLight, albedo: torch.Tensor, normal: torch.Tensor, lighting: np.ndarray) -> np.ndarray:
    """albedo and world normals [B, 3, R, R] shaded by the face layer's light with the renderer's lighting
    row [5] (radians): [B, R, R, 3] in [0, 1]."""
    azimuth, elevation, intensity, ambient, warmth = (float(v) for v in lighting)
    values = {
        "azimuth": math.degrees(azimuth),
        "elevation": math.degrees(elevation),
        "intensity": intensity,
        "ambient": ambient,
        "warmth": warmth,
    }
    values = {k: torch.full((len(albedo),), v) for k, v in values.items()}
    return (
        light.shade(albedo, normal / normal.norm(dim=1, keepdim=True).clamp_min(1e-6), values)
        .permute(0, 2, 3, 1)
        .numpy()
    )


def head_frames(factors, layer: FaceLayer, yaws) -> np.ndarray:
    """The frames of FRAMES for one head at each yaw: [S, len(FRAMES), R, R, 3] in [0, 1]."""
    face = face_of(factors.identity)
    light, background = factors.lighting[0], factors.background
    front, coverage = render_frame(factors.identity, (0.0, 0.0, 0.0), light, background, R, return_mask=True)
    front = front.astype(np.float32) / 255
    surface, depth = traced(face, 0.0)
    head = np.isin(surface, HEAD)
    behind = np.where(
        ((coverage > 0.5) & ~head)[..., None],  # the body does not turn
        front,
        _background_image(check_background(background), R).reshape(R, R, 3),
    )
    maps = torch.cat([torch.from_numpy(front).permute(2, 0, 1), torch.from_numpy(head).float()[None]])[None]
    dome = np.where(head, layer.dome[0, 0].numpy(), -2.0).astype(np.float32)
    # The layer-lit frames: albedo and normals of the frontal map and of the radial map.
    still = np.eye(3, dtype=np.float32)
    rays, placed = camera_rays(R), place(face, still)
    t, _ = trace(face, still, rays, placed)
    frontal = torch.cat(
        [head_looks(face, still, rays, t, surface.reshape(-1)), torch.from_numpy(head).float()[None, None]], 1
    )
    radius, looks = (torch.from_numpy(m)[None] for m in radial_map(face))
    body_t = np.minimum(placed["neck"].intersect(rays)[0], placed["shoulders"].intersect(rays)[0])
    body_depth = np.where(np.isfinite(body_t), (CAMERA[2] + body_t * rays.z) / VIEW_HALF, -np.inf).reshape(
        R, R
    )
    layer_light = RendererLight(1)
    out = []
    for yaw in yaws:
        truth = render_frame(factors.identity, (math.radians(yaw), 0.0, 0.0), light, background, R)
        truth = truth.astype(np.float32) / 255
        rot = rotation(torch.tensor([math.radians(yaw)]), torch.zeros(1), torch.zeros(1))
        turned = []
        for surface_depth in (depth, dome):
            maps_out, hit, _ = layer.turn(maps, torch.from_numpy(surface_depth)[None, None], rot)
            shown = ((maps_out[0, 3] > 0.5) & (hit[0, 0] > 0)).numpy()[..., None]
            turned.append((maps_out[0, :3].permute(1, 2, 0).numpy(), shown))
        (colour, shown), (dome_colour, dome_shown) = turned
        # The renderer's head traced at the yaw: its skin for the skin-only frame, its looks layer-lit.
        turned_rot = renderer_rotation(math.radians(yaw), 0.0, 0.0).astype(np.float32)
        t_y, surface_y = trace(face, turned_rot, rays, place(face, turned_rot))
        skin = np.isin(surface_y, SKIN).reshape(R, R, 1) & shown
        traced_look = head_looks(face, turned_rot, rays, t_y, surface_y)
        traced_shown = np.isin(surface_y, HEAD).reshape(R, R, 1)
        frontal_out, frontal_hit, _ = layer.turn(frontal, torch.from_numpy(depth)[None, None], rot)
        frontal_shown = ((frontal_out[0, 6] > 0.5) & (frontal_hit[0, 0] > 0)).numpy()[..., None]
        radial_out, radial_hit, radial_depth = turn_radial(layer, looks, radius, rot)
        # The radial head holds its underside too, which the still neck hides: nearer wins.
        radial_shown = ((radial_hit[0, 0] > 0).numpy() & (radial_depth[0, 0].numpy() > body_depth))[..., None]
        # The maps' normals are the head's at rest, turned to the camera's by the pose; the traced ones are.
        shaded = [
            lit(
                layer_light,
                looked[:, :3],
                torch.einsum("bij,bjhw->bihw", turn, looked[:, 3:6]),
                factors.lighting[0],
            )[0]
            for looked, turn in (
                (traced_look, torch.eye(3)[None]),
                (frontal_out[:, :6], rot),
                (radial_out, rot),
            )
        ]
        out.append(
            [
                truth,
                np.where(shown, colour, behind),
                np.where(dome_shown, dome_colour, behind),
                np.where(skin, colour, truth),
                np.where(traced_shown, shaded[0], behind),
                np.where(frontal_shown, shaded[1], behind),
                np.where(radial_shown, shaded[2], behind),
            ]
        )
    return np.asarray(out, dtype=np.float32)


def measure(videos: int) -> tuple[dict, np.ndarray]:
    """The probes' yaw per frame kind and setting, and the figure's frames [F, FIGURE_ROWS, 3, R, R]
    (F: len(FRAMES))."""
    probe = load_probes()
    layer = renderer_camera_layer()
    reads = np.zeros((videos, len(YAWS), len(FRAMES)))
    figure = []
    for v, factors in enumerate(renderer_videos(videos)):
        frames = head_frames(factors, layer, YAWS)  # [S, F, R, R, 3]
        x = torch.from_numpy(frames.reshape(-1, R, R, 3)).permute(0, 3, 1, 2) * 2 - 1
        with torch.no_grad():
            yaw = probe.values(x)["pose"][:, 0].numpy()
        reads[v] = np.degrees(yaw).reshape(len(YAWS), len(FRAMES))
        if v < FIGURE_ROWS:
            figure.append(frames[YAWS.index(FIGURE_YAW)])
    result = {"videos": videos, "yaws": list(YAWS)}
    for k, name in enumerate(FRAMES):
        error = np.abs(reads[:, :, k] - np.asarray(YAWS)[None])
        result[name] = {
            "mean_read": [round(float(m), 2) for m in reads[:, :, k].mean(0)],
            "mae": round(float(error.mean()), 2),
        }
    sweep = torch.from_numpy(np.asarray(figure)).permute(1, 0, 4, 2, 3) * 2 - 1  # [frames, rows, 3, R, R]
    return result, sweep


def table(result: dict) -> str:
    lines = [
        "| yaw set (°) | " + " | ".join(f"{y:+d}" for y in result["yaws"]) + " | MAE |",
        "|---|" + "---|" * (len(result["yaws"]) + 1),
    ]
    for name in FRAMES:
        r = result[name]
        reads = " | ".join(f"{m:+.1f}" for m in r["mean_read"])
        lines.append(f"| {name} | {reads} | {r['mae']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=64, help="the renderer's reference heads")
    parser.add_argument("--out", type=Path, default=Path("build/turn_ceiling"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.videos < FIGURE_ROWS:
        parser.error(f"--videos {args.videos}: need at least {FIGURE_ROWS} (the figure's rows)")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    result, sweep = measure(args.videos)
    (args.out / "turn_ceiling.json").write_text(json.dumps(result, indent=2) + "\n")
    title = f"the renderer's heads at yaw {FIGURE_YAW:+d}°"
    sweep_figure(sweep, LABELS, title, args.out / "turn_ceiling.png")
    print(table(result))


if __name__ == "__main__":
    main()
