"""The colours of the surfaces the rays hit: painted albedo (eyes, brows, mouth, nostrils, hair) and lighting.

Surfaces are shaded with Lambertian + ambient + a little specular light in linear RGB.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from stylevid.data.synthetic.head import LIPS, Face
from stylevid.data.synthetic.trace import SURFACES, Quadric, Rays, place, trace

_SMOOTH_UNION = 0.25  # how far (in the implicit value) cranium and jaw normals blend across their seam
_WRAP = 0.15  # light wraps a little past the terminator, as through skin
_WARMTH = np.array([0.25, 0.03, -0.3])  # RGB gain per unit of warmth: orange light > 0, bluish < 0
_EYE_WHITE = np.array([0.93, 0.91, 0.88])
_PUPIL = np.array([0.03, 0.03, 0.03])
_BLENDED = {"cranium": "jaw", "jaw": "cranium"}  # normals blend across the seam, so no crease shows


def _soft(x: np.ndarray, edge: float) -> np.ndarray:
    """1 where x < 0, 0 where x > edge, linear between: a soft inside test for painted shapes."""
    return np.clip(-x / edge, 0, 1)


def _paint(color: np.ndarray, amount: np.ndarray, paint) -> np.ndarray:
    return color + (paint - color) * amount[:, None]


def _skin_albedo(face: Face, p: np.ndarray, surface: str) -> np.ndarray:
    """sRGB albedo [K, 3] of cranium and jaw at head-space points [K, 3]: skin with eyes, brows and mouth."""
    color = np.broadcast_to(face.skin, p.shape).astype(np.float32)
    front = p[:, 2] > 0  # features are painted on the face, not on the back of the head
    for paint, (x, y), (half_width, below, above) in _features(face):
        # Each feature is painted inside its box only: most of the skin needs no work.
        dx, dy = p[:, 0] - x, p[:, 1] - y
        k = np.flatnonzero(front & (np.abs(dx) < half_width) & (dy > -below) & (dy < above))
        color[k] = paint(face, dx[k], dy[k], color[k])
    return color


def _features(face: Face) -> list:
    """(paint, centre, box) of each painted feature; paint(face, x, y, color) takes x, y from the centre."""
    features = []
    for side in (-1.0, 1.0):
        eye_box = (1.7 * face.eye_width, 0.22, 0.42)  # above the eye: the brow
        features.append((functools.partial(_eye, side=side), (side * face.eye_spacing, face.eye_y), eye_box))
        features.append((_cheek, (side * 0.42, -0.35), (0.3, 0.25, 0.25)))
    features.append((_mouth, (0.0, face.mouth_y), (1.1 * face.mouth_width, 0.12, 0.12)))
    return features


def _eye(face: Face, x: np.ndarray, y: np.ndarray, color: np.ndarray, side: float) -> np.ndarray:
    """An eye (white, iris, pupil, lashes) and its brow, centred on the eye; `side` -1: subject's right."""
    ex, ey = x / face.eye_width, y / face.eye_height
    # A darker socket stands in for the shadow of the brow, which the tracer does not cast.
    socket = 0.18 * np.clip(1 - (ex / 1.6) ** 2 - ((ey + 0.2) / 2.6) ** 2, 0, 1) ** 2
    color = color * (1 - socket[:, None])
    lid = np.maximum(1 - ex**2, 0) * (1 - 0.25 * side * ex)  # almond, pointed at the outer corner
    white = _soft(np.abs(ey) - lid, 0.15)
    iris = np.hypot(x, y) / (0.42 * face.eye_width)
    color = _paint(color, white, _EYE_WHITE)
    color = _paint(color, white * _soft(iris - 1, 0.12), face.iris)
    color = _paint(color, white * _soft(iris - 0.45, 0.1), _PUPIL)
    lash = _soft(np.abs(ey - lid - 0.12) - 0.18, 0.1) * (np.abs(ex) < 1.1) * (ey > 0)
    color = _paint(color, lash, face.hair_color * 0.3)
    bx = (x - side * 0.02) / (1.3 * face.eye_width)
    arch = face.eye_height + 0.1 + 0.05 * (1 - bx**2)
    thick = face.brow_thickness * (1 - 0.4 * np.clip(side * bx, 0, 1))  # thinner towards the temple
    brow = _soft(np.abs(y - arch) - thick, 0.012) * _soft(np.abs(bx) - 1, 0.1)
    return _paint(color, 0.9 * brow, face.hair_color * 0.6)


def _cheek(face: Face, x: np.ndarray, y: np.ndarray, color: np.ndarray) -> np.ndarray:
    """A faint blush."""
    return _paint(color, 0.12 * np.clip(1 - (x / 0.28) ** 2 - (y / 0.22) ** 2, 0, 1) ** 2, LIPS)


def _mouth(face: Face, x: np.ndarray, y: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Lips, the upper one in shade, and the line between them, smiling a little."""
    mx, my = x / face.mouth_width, y / 0.055
    smile = 0.5 * mx**2
    lips = _soft(np.abs(my - smile + 0.1) - (1 - mx**2) * (1.0 + 0.2 * (my < smile)), 0.25)
    color = _paint(color, lips, face.lips)
    color = _paint(color, lips * np.clip(my - smile, 0, 1) * 0.35, face.lips * 0.6)
    line = _soft(np.abs(my - smile) - 0.12, 0.15) * _soft(np.abs(mx) - 1, 0.1)
    return _paint(color, line * 0.9, face.lips * 0.3)


def _nose_albedo(face: Face, p: np.ndarray, surface: str) -> np.ndarray:
    """sRGB albedo [K, 3] of the nose: skin with nostrils on its underside."""
    u = face.shapes["nose"].local(p)
    nostril = sum(
        _soft(((u[:, 0] - 0.45 * side) / 0.32) ** 2 + ((u[:, 2] - 0.3) / 0.45) ** 2 - 1, 0.5)
        for side in (-1.0, 1.0)
    )
    nostril = np.clip(nostril * np.clip((-u[:, 1] - 0.5) / 0.2, 0, 1), 0, 1)
    return _paint(np.broadcast_to(face.skin * 0.96, p.shape), nostril * 0.8, face.skin * 0.25)


def _wing_albedo(face: Face, p: np.ndarray, surface: str) -> np.ndarray:
    return np.broadcast_to(face.skin * 0.96, p.shape)


def _ear_albedo(face: Face, p: np.ndarray, surface: str) -> np.ndarray:
    """sRGB albedo [K, 3] of an ear: slightly redder skin, a darker bowl in the middle."""
    u = face.shapes[surface].local(p)
    bowl = _soft(np.hypot(u[:, 1] / 0.7, u[:, 2] / 0.55) - 1, 0.3)
    return (face.skin * np.array([0.97, 0.9, 0.88])) * (1 - 0.3 * bowl[:, None])


def _hair_albedo(face: Face, p: np.ndarray, surface: str) -> np.ndarray:
    """sRGB albedo [K, 3] of the hair: faint strands running down from a parting; darker inside."""
    azimuth = np.abs(np.arctan2(p[:, 0], p[:, 2]))  # |.|: mirror-symmetric, with a parting in the middle
    strands = 0.88 + 0.12 * np.sin(28 * azimuth + 4 * np.sin(3 * p[:, 1]))
    shade = 0.45 if surface == "hair_inside" else 1.0  # the inside of the hair gets little light
    return face.hair_color * (shade * strands[:, None])


def _neck_albedo(face: Face, p: np.ndarray, surface: str) -> np.ndarray:
    return np.broadcast_to(face.skin * 0.88, p.shape)


def _shirt_albedo(face: Face, p: np.ndarray, surface: str) -> np.ndarray:
    return np.broadcast_to(face.shirt, p.shape)


_ALBEDO = {
    "cranium": _skin_albedo,
    "jaw": _skin_albedo,
    "nose": _nose_albedo,
    "right_wing": _wing_albedo,
    "left_wing": _wing_albedo,
    "right_ear": _ear_albedo,
    "left_ear": _ear_albedo,
    "hair": _hair_albedo,
    "hair_inside": _hair_albedo,
    "neck": _neck_albedo,
    "shoulders": _shirt_albedo,
}
# Specular strength per surface (skin otherwise): hair has a soft sheen, cloth and hidden hair none.
_GLOSS = {"hair": 0.1, "hair_inside": 0.0, "shoulders": 0.0}
_SKIN_GLOSS = 0.06


def surface_normal(placed: dict[str, Quadric], index: int, p: np.ndarray) -> np.ndarray:
    """World unit normals [K, 3] of surface SURFACES[index] at its world points p [K, 3], shapes placed."""
    name, shape, crossing, _ = SURFACES[index]
    g, _ = placed[shape].gradient(p)
    if name in _BLENDED:
        # Near the seam the other shape's normal counts almost as much: a smooth union's shading.
        other, value = placed[_BLENDED[name]].gradient(p)
        g = g + other * np.exp(-np.maximum(value, 0) / _SMOOTH_UNION)[:, None]
        g /= np.linalg.norm(g, axis=-1, keepdims=True)
    return -g if crossing else g


def shade(face: Face, rot: np.ndarray, lighting: np.ndarray, rays: Rays) -> tuple[np.ndarray, np.ndarray]:
    """Indices [H] of the rays that hit the head or body, and their lit sRGB colours [H, 3] in [0, 1].

    rot [3, 3] is the head-to-world rotation of the pose, lighting [5] a row of the lighting factor.
    """
    placed = place(face, rot)
    t, surface = trace(face, rot, rays, placed)
    hits = np.flatnonzero(surface >= 0)
    surface = surface[hits]
    albedo = np.empty((len(hits), 3), dtype=np.float32)
    normal = np.empty((3, len(hits)), dtype=np.float32)  # components first: fast elementwise maths
    gloss = np.empty(len(hits), dtype=np.float32)
    for index, (name, _, _, space) in enumerate(SURFACES):
        j = np.flatnonzero(surface == index)
        if len(j) == 0:
            continue
        p = rays.points(t[hits[j]], hits[j])
        normal[:, j] = surface_normal(placed, index, p).T
        albedo[j] = _ALBEDO[name](face, p @ rot if space == "head" else p, name)
        gloss[j] = _GLOSS.get(name, _SKIN_GLOSS)
    azimuth, elevation, intensity, ambient, warmth = (float(v) for v in lighting)
    lx, ly, lz = (
        math.sin(azimuth) * math.cos(elevation),
        math.sin(elevation),
        math.cos(azimuth) * math.cos(elevation),
    )
    cos = normal[0] * lx + normal[1] * ly + normal[2] * lz
    diffuse = np.clip((cos + _WRAP) / (1 + _WRAP), 0, 1)
    sky = ambient * (0.7 + 0.3 * normal[1])  # ambient light comes mostly from above
    hx, hy, hz = lx - rays.x[hits], ly - rays.y[hits], lz - rays.z[hits]  # half vectors of light and eye
    facing = np.clip(
        (normal[0] * hx + normal[1] * hy + normal[2] * hz) / np.sqrt(hx * hx + hy * hy + hz * hz), 0, 1
    )
    facing *= facing
    facing *= facing
    facing *= facing
    specular = gloss * (facing * facing) * (cos > 0)  # shininess 16
    gains = (1 + warmth * _WARMTH).astype(np.float32)
    # Gamma 2 (square, square root) instead of sRGB's 2.2: indistinguishable here and far cheaper.
    light = (sky + intensity * diffuse)[:, None] * (albedo * albedo) + (intensity * specular)[:, None]
    return hits, np.sqrt(np.clip(light * gains, 0, 1))
