"""benchmarks/turn_ceiling.py: at rest every frame it builds is the renderer's own; turned, the renderer's
frame still is, and the composite keeps the body and backdrop where the turned head is not. The radial
turn against a closed-form ray-sphere intersection, its baked map against the renderer's tracer."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # turn_ceiling imports face_controls by name, as when run as a script
    spec.loader.exec_module(module)
    return module


_load("face_controls")
turn_ceiling = _load("turn_ceiling")


def test_at_rest_every_frame_is_the_renderers_and_turned_the_first_still_is():
    from stylevid.data.synthetic.render import render_frame

    factors = turn_ceiling.renderer_videos(1)[0]
    frames = turn_ceiling.head_frames(
        factors, turn_ceiling.renderer_camera_layer(), (0, 30)
    )  # [2, F, R, R, 3]
    assert frames.shape[1] == len(turn_ceiling.FRAMES)
    for yaw, kinds in zip((0, 30), frames, strict=True):
        truth = render_frame(
            factors.identity, (np.radians(yaw), 0.0, 0.0), factors.lighting[0], factors.background, 64
        )
        np.testing.assert_allclose(kinds[0], truth / 255, atol=1e-6)
    # At rest the turn shows the frontal map where it was: only the antialiased edge may differ.
    at_rest = np.abs(frames[0, 1:4] - frames[0, :1]).max(-1)
    assert (at_rest > 0.02).mean() < 0.02
    # Turned 30 degrees the true-depth head differs from the renderer's (the outline a frontal map cannot
    # carry), and the skin-only frame differs from the renderer's less than the whole turned head does.
    whole, skin = (np.abs(frames[1, k] - frames[1, 0]).mean() for k in (1, 3))
    assert 0 < skin < whole
    # The layer-lit frames at rest: the frontal map is the traced head; the radial map nearly is (one
    # surface per direction from the pivot: the inside of the hair behind the cheeks is lost).
    lit_at_rest = np.abs(frames[0, 5:7] - frames[0, 4:5]).max(-1)
    assert (lit_at_rest[0] > 0.02).mean() < 0.02
    assert (lit_at_rest[1] > 0.02).mean() < 0.08


def _directions(rows: int) -> np.ndarray:
    """Unit directions [3, rows, 2 rows] of a radial map's texels: latitude from the top, longitude from
    -180 degrees, 0 towards the camera (x right, y up, z to the camera)."""
    lat = np.pi / 2 - (np.arange(rows) + 0.5) / rows * np.pi
    lon = (np.arange(2 * rows) + 0.5) / (2 * rows) * 2 * np.pi - np.pi
    lat, lon = np.meshgrid(lat, lon, indexing="ij")
    return np.stack([np.cos(lat) * np.sin(lon), np.sin(lat), np.cos(lat) * np.cos(lon)])


def test_radial_turn_of_a_sphere_hits_where_the_closed_form_says_and_looks_up_the_turned_direction():
    """A sphere of radius rho about the pivot, each texel holding its own direction: every pixel's ray
    enters the sphere where the quadratic's root says, and the map read there is that point's direction
    in the head's frame, R^T (hit - pivot) / rho."""
    import torch

    from stylevid.networks.face3d import rotation

    layer = turn_ceiling.renderer_camera_layer()
    rho, rows = 0.5, 64
    angles = (
        torch.tensor([np.radians(30.0)]),
        torch.tensor([np.radians(12.0)]),
        torch.tensor([np.radians(-8.0)]),
    )
    rot = rotation(*(a.float() for a in angles))
    looks = torch.from_numpy(_directions(rows)).float()[None]
    radius = torch.full((1, 1, rows, 2 * rows), rho)
    out, hit, depth = turn_ceiling.turn_radial(layer, looks, radius, rot)
    # The oracle: the ray from the camera (0, 0, d) through (x, y, 0) meets |p - pivot| = rho.
    d, pivot = layer.camera_distance, layer.pivot.numpy().astype(np.float64)
    xy = layer.xy.numpy().astype(np.float64)
    direction = np.concatenate([xy, np.full_like(xy[..., :1], -d)], -1)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    oc = np.array([0.0, 0.0, d]) - pivot
    b = direction @ oc
    disc = b * b - (oc @ oc - rho**2)
    t = -b - np.sqrt(np.maximum(disc, 0))
    inside = disc > 0
    point = np.array([0.0, 0.0, d]) + t[..., None] * direction
    shown = hit[0, 0].numpy() > 0
    # Only pixels on the outline may disagree (a ray that grazes the sphere between two march steps).
    assert (shown != inside).mean() < 0.01
    both = shown & inside
    expected = (point - pivot) @ rot[0].numpy().astype(np.float64) / rho  # rows: R^T (p - pivot)
    got = out[0].permute(1, 2, 0).numpy()
    error = np.linalg.norm(got[both] - expected[both], axis=-1)
    assert np.median(error) < 0.01 and np.quantile(error, 0.99) < 0.06
    np.testing.assert_allclose(depth[0, 0].numpy()[both], point[both][:, 2], atol=0.01)


def test_radial_map_holds_the_renderers_outer_surface():
    """The baked map's distance in the direction of each head point the renderer's tracer finds at rest
    is that point's distance: never nearer (the point would be outside the map's head) and, but for the
    few points hidden behind another part (the hair's inside), the same."""
    from stylevid.data.synthetic.head import face_of
    from stylevid.data.synthetic.trace import VIEW_HALF, camera_rays, place, trace

    face = face_of(turn_ceiling.renderer_videos(1)[0].identity)
    radius, looks = turn_ceiling.radial_map(face)
    rows = radius.shape[1]
    assert radius.shape == (1, rows, 2 * rows) and looks.shape == (6, rows, 2 * rows)
    rays, still = camera_rays(64), np.eye(3, dtype=np.float32)
    t, surface = trace(face, still, rays, place(face, still))
    n = np.flatnonzero(np.isin(surface, turn_ceiling.HEAD))
    p = rays.points(t[n], n)  # head space at rest, the pivot at its origin
    distance = np.linalg.norm(p, axis=-1)
    u = p / distance[:, None]
    row = np.clip(((0.5 - np.arcsin(u[:, 1]) / np.pi) * rows).astype(int), 0, rows - 1)
    col = np.clip(((np.arctan2(u[:, 0], u[:, 2]) / np.pi + 1) * rows).astype(int), 0, 2 * rows - 1)
    error = radius[0, row, col] * VIEW_HALF - distance  # head units
    assert error.min() > -0.03
    assert (np.abs(error) < 0.05).mean() > 0.97
    # The normals are unit vectors and face away from the pivot.
    normal = looks[3:].reshape(3, -1)
    np.testing.assert_allclose(np.linalg.norm(normal, axis=0), 1, atol=1e-4)
    assert (np.einsum("in,in->n", normal, _directions(rows).reshape(3, -1)) > 0).mean() > 0.95
