"""The synthetic face-video dataset: ray-traced heads whose identity, pose, lighting and background are known.

Every frame is rendered from four factor vectors (names in FACTOR_NAMES):

- identity [20], constant within a video, every value in [0, 1]: head and jaw shape, skin, hair,
  eyes, brows, nose, mouth, ears and shirt colour.
- pose [T, 3] in radians: yaw > 0 turns the nose to the image's right, pitch > 0 lifts it, roll > 0
  tilts the head counter-clockwise on screen.
- lighting [T, 5]: azimuth (radians, > 0: light from the image's right), elevation (radians, > 0:
  from above), intensity of the key light, ambient level, warmth (-1 bluish ... +1 orange).
- background [10], constant within a video: two sRGB colours in [0, 1], the pattern's angle (radians
  from the image's x axis) and frequency (cycles across the frame), and the weights of stripes and
  checker over a gradient.

The head is a union of ellipsoids (cranium, jaw, nose, ears, a hair shell) in head space; eyes, brows
and mouth are painted on its surface. Each pixel casts a perspective ray against the ellipsoids moved
by the pose and keeps the nearest surface, so far-side features and ears hide themselves. Surfaces are
shaded with Lambertian + ambient + a little specular light in linear RGB; frames are traced at twice
the resolution and box-filtered down. The background is not lit: it depends on the background vector
alone, as the generator's background branch does. Mirroring a frame left-right equals rendering the
mirrored factors (format.MIRRORED_FACTORS). Pose and lighting are sums of a few slow random sinusoids,
so they move smoothly; video i of `synthesize` depends only on (seed, i).
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import functools
import math
import multiprocessing
import time
from pathlib import Path

import numpy as np

IDENTITY_NAMES = [
    "head_width",
    "head_height",
    "jaw_width",
    "skin_tone",
    "skin_warmth",
    "hair_darkness",
    "hair_redness",
    "hair_length",
    "hair_volume",
    "hairline",
    "eye_size",
    "eye_spacing",
    "iris_hue",
    "brow_thickness",
    "nose_length",
    "nose_width",
    "mouth_width",
    "lip_redness",
    "ear_size",
    "shirt_hue",
]
FACTOR_NAMES: dict[str, list[str]] = {
    "identity": IDENTITY_NAMES,
    "pose": ["yaw", "pitch", "roll"],
    "lighting": ["azimuth", "elevation", "intensity", "ambient", "warmth"],
    "background": [
        "color1_r",
        "color1_g",
        "color1_b",
        "color2_r",
        "color2_g",
        "color2_b",
        "angle",
        "frequency",
        "stripes",
        "checker",
    ],
}
LANDMARK_NAMES = ["nose_tip", "right_eye", "left_eye", "mouth", "right_ear", "left_ear"]

# (low, high, fastest sinusoid in Hz) of every per-frame factor: the range it sweeps and how fast.
_MOTION = {
    "yaw": (-0.8, 0.8, 0.5),
    "pitch": (-0.35, 0.35, 0.5),
    "roll": (-0.25, 0.25, 0.4),
    "azimuth": (-1.2, 1.2, 0.3),
    "elevation": (-0.3, 0.9, 0.3),
    "intensity": (0.7, 1.4, 0.3),
    "ambient": (0.15, 0.45, 0.3),
    "warmth": (-1.0, 1.0, 0.2),
}
_SINUSOIDS = 3
_SLOWEST_HZ = 0.05

_SUPERSAMPLE = 2  # traced at 2x and box-filtered: clean silhouettes at 64²
_VIEW_HALF = 1.5  # half the frame's width in head units, at the head's depth
_VIEW_CENTER_Y = -0.15  # below the head centre, so the neck and shoulders fill the bottom
_CAMERA_DISTANCE = 8.0  # mild perspective: the near ear looks a little larger than the far one
_CAMERA = np.array([0.0, _VIEW_CENTER_Y, _CAMERA_DISTANCE], dtype=np.float32)
_VISIBLE_SLACK = 1e-3  # a landmark lies on a surface; float error must not hide it
_SMOOTH_UNION = 0.25  # how far (in the implicit value) cranium and jaw normals blend across their seam
_HAIR_SLOPE = 0.35  # azimuth (rad) over which the hairline goes down from the forehead to the sides
_WRAP = 0.15  # light wraps a little past the terminator, as through skin

# sRGB colour stops, interpolated by the identity's [0, 1] values.
_SKIN = np.array(
    [[0.97, 0.82, 0.72], [0.90, 0.69, 0.55], [0.76, 0.53, 0.38], [0.55, 0.36, 0.24], [0.34, 0.22, 0.15]]
)
_HAIR = np.array([[0.88, 0.75, 0.50], [0.58, 0.42, 0.26], [0.30, 0.20, 0.12], [0.07, 0.06, 0.06]])
_RED_HAIR = np.array([[0.90, 0.55, 0.30], [0.70, 0.32, 0.14], [0.42, 0.16, 0.08], [0.16, 0.07, 0.05]])
_IRIS = np.array([[0.30, 0.50, 0.78], [0.32, 0.55, 0.38], [0.55, 0.45, 0.22], [0.36, 0.21, 0.10]])
_LIPS = np.array([0.78, 0.33, 0.36])
_EYE_WHITE = np.array([0.93, 0.91, 0.88])
_PUPIL = np.array([0.03, 0.03, 0.03])


@dataclasses.dataclass
class VideoFactors:
    """One video's ground truth: identity [Di] and background [Db] constant, pose [T, 3], lighting [T, Dl]."""

    identity: np.ndarray
    background: np.ndarray
    pose: np.ndarray
    lighting: np.ndarray
    fps: float

    @property
    def frames(self) -> int:
        return len(self.pose)


@dataclasses.dataclass(frozen=True)
class _Ellipsoid:
    """Points p with |(axes @ (p - center)) / radii| = 1; the rows of `axes` are its local axes."""

    center: np.ndarray
    radii: np.ndarray
    axes: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3, dtype=np.float32))

    def local(self, p: np.ndarray) -> np.ndarray:
        """Points [N, 3] in the unit-sphere frame of the ellipsoid."""
        return ((p - self.center) @ self.axes.T) / self.radii


@dataclasses.dataclass(frozen=True)
class _Face:
    """An identity turned into geometry (head units) and sRGB colours."""

    # By the shape names of _SURFACES; neck and shoulders in world space, the rest in head space.
    shapes: dict[str, _Ellipsoid]
    skin: np.ndarray
    hair_color: np.ndarray
    iris: np.ndarray
    lips: np.ndarray
    shirt: np.ndarray
    eye_y: float
    eye_spacing: float
    eye_width: float  # half-widths and half-heights from here on
    eye_height: float
    brow_thickness: float
    mouth_y: float
    mouth_width: float
    hairline: float  # height of the hair's edge over the forehead
    face_opening: float  # azimuth (rad) beyond which hair may come down the sides
    hair_side: float  # lowest hair beside the face
    hair_back: float  # lowest hair at the back


# Surfaces a ray may stop at: (name, shape, which crossing of the shape, space). Order = surface index.
_SURFACES = [
    ("cranium", "cranium", 0, "head"),
    ("jaw", "jaw", 0, "head"),
    ("nose", "nose", 0, "head"),
    ("right_wing", "right_wing", 0, "head"),
    ("left_wing", "left_wing", 0, "head"),
    ("right_ear", "right_ear", 0, "head"),
    ("left_ear", "left_ear", 0, "head"),
    ("hair", "hair", 0, "head"),
    ("hair_inside", "hair", 1, "head"),  # the back of the hair, seen past the edge of the face
    ("neck", "neck", 0, "world"),  # the head turns on the neck, which stays still
    ("shoulders", "shoulders", 0, "world"),
]
_BLENDED = {"cranium": "jaw", "jaw": "cranium"}  # normals blend across the seam, so no crease shows


def _lerp(low: float, high: float, x: float) -> float:
    return low + (high - low) * x


def _stops(colors: np.ndarray, x: float) -> np.ndarray:
    """Piecewise-linear interpolation of colour stops [K, 3] at x in [0, 1]."""
    position = x * (len(colors) - 1)
    i = min(int(position), len(colors) - 2)
    return colors[i] + (colors[i + 1] - colors[i]) * (position - i)


def _rotation(yaw, pitch, roll) -> np.ndarray:
    """Head-to-world rotations [..., 3, 3]: nod (pitch) first, then turn (yaw), then tilt (roll)."""
    yaw, pitch, roll = (np.asarray(a, dtype=np.float32) for a in (yaw, pitch, roll))
    zero, one = np.zeros_like(yaw), np.ones_like(yaw)
    (cy, cp, cr), (sy, sp, sr) = np.cos([yaw, pitch, roll]), np.sin([yaw, pitch, roll])
    turn = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*yaw.shape, 3, 3)
    # Pitch > 0 lifts the nose (+z towards +y): a rotation about x by -pitch.
    nod = np.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], -1).reshape(*yaw.shape, 3, 3)
    tilt = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*yaw.shape, 3, 3)
    return (tilt @ turn @ nod).astype(np.float32)


def _surface_z(parts: list[_Ellipsoid], x, y):
    """Depth of the front surface of axis-aligned ellipsoids at head-space (x, y); -inf off them."""
    z = np.full(np.broadcast(x, y).shape, -np.inf, dtype=np.float32)
    for e in parts:
        inside = 1 - ((x - e.center[0]) / e.radii[0]) ** 2 - ((y - e.center[1]) / e.radii[1]) ** 2
        z = np.where(inside > 0, np.maximum(z, e.center[2] + e.radii[2] * np.sqrt(np.maximum(inside, 0))), z)
    return z


def _face(identity: np.ndarray) -> _Face:
    """The geometry and colours of one identity vector [20] in [0, 1]."""
    a = dict(zip(IDENTITY_NAMES, (float(v) for v in identity), strict=True))
    f32 = np.float32
    width = _lerp(0.70, 0.84, a["head_width"])
    height = _lerp(0.92, 1.04, a["head_height"])
    cranium = _Ellipsoid(np.array([0, 0.1, -0.02], f32), np.array([width, height, 0.9], f32))
    jaw_width = width * _lerp(0.74, 0.92, a["jaw_width"])
    jaw = _Ellipsoid(np.array([0, -0.36, 0.06], f32), np.array([jaw_width, 0.66, 0.74], f32))
    eye_y = 0.0
    nose_half = _lerp(0.15, 0.22, a["nose_length"])
    nose_width = _lerp(0.07, 0.11, a["nose_width"])
    base = -0.36  # the bottom of the nose, about halfway from the eyes to the mouth
    nose_y = base + 0.9 * nose_half
    nose = _Ellipsoid(
        np.array([0, nose_y, _surface_z([cranium, jaw], 0.0, nose_y) - 0.08], f32),
        np.array([nose_width, nose_half, 0.16], f32),
        _rotation(0.0, -0.35, 0.0).T,  # tipped so the bottom of the nose sticks out further than the bridge
    )
    parts = {
        # The wings of the nostrils widen its base, so it reads as a nose and not a peg.
        f"{side_name}_wing": _Ellipsoid(
            np.array(
                [side * 0.75 * nose_width, base + 0.045, _surface_z([cranium, jaw], 0.0, base) - 0.03], f32
            ),
            np.array([0.045, 0.04, 0.055], f32),
        )
        for side_name, side in (("right", -1.0), ("left", 1.0))
    }
    ear_half = _lerp(0.17, 0.23, a["ear_size"])
    for side_name, side in (("right", -1.0), ("left", 1.0)):
        # Attached at the front, ears open backwards and so face a little forwards: seen from the front too.
        parts[f"{side_name}_ear"] = _Ellipsoid(
            np.array([side * width * 0.98, -0.05, -0.12], f32),
            np.array([0.05, ear_half, 0.12], f32),
            _rotation(-side * 0.6, 0.0, 0.0).T,
        )
    volume, length = a["hair_volume"], a["hair_length"]
    top = 0.1 + height + _lerp(0.04, 0.16, volume)
    bottom = _lerp(-0.75, -1.45, length)
    hair = _Ellipsoid(
        np.array([0, (top + bottom) / 2, -0.07], f32),
        np.array(
            [width * _lerp(1.07, 1.2, volume), (top - bottom) / 2, 0.9 * _lerp(1.06, 1.16, volume)], f32
        ),
    )
    neck = _Ellipsoid(np.array([0, -1.25, -0.12], f32), np.array([0.56 * width, 0.95, 0.5 * width], f32))
    shoulders = _Ellipsoid(np.array([0, -1.98, -0.3], f32), np.array([2.0, 0.76, 0.62], f32))
    skin = _stops(_SKIN, a["skin_tone"]) + (a["skin_warmth"] - 0.5) * np.array([0.05, 0.0, -0.05])
    dark = a["hair_darkness"]
    hair_color = _stops(_HAIR, dark) + (_stops(_RED_HAIR, dark) - _stops(_HAIR, dark)) * a["hair_redness"]
    eye_width = _lerp(0.11, 0.15, a["eye_size"])
    return _Face(
        shapes={
            "cranium": cranium,
            "jaw": jaw,
            "nose": nose,
            **parts,
            "hair": hair,
            "neck": neck,
            "shoulders": shoulders,
        },
        skin=skin,
        hair_color=hair_color,
        iris=_stops(_IRIS, a["iris_hue"]),
        lips=skin + (_LIPS - skin) * _lerp(0.25, 0.7, a["lip_redness"]),
        shirt=np.array(colorsys.hsv_to_rgb(a["shirt_hue"], 0.55, 0.62)),
        eye_y=eye_y,
        eye_spacing=_lerp(0.25, 0.34, a["eye_spacing"]),
        eye_width=eye_width,
        eye_height=0.5 * eye_width,
        brow_thickness=_lerp(0.018, 0.05, a["brow_thickness"]),
        mouth_y=-0.62,
        mouth_width=_lerp(0.15, 0.25, a["mouth_width"]),
        hairline=_lerp(0.66, 0.42, a["hairline"]),
        face_opening=_lerp(1.4, 1.25, length),
        hair_side=_lerp(0.25, -1.5, length),
        hair_back=_lerp(-0.55, -1.5, length),
    )


# --- ray tracing -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Rays:
    """Unit directions [N] (by component) of rays from the camera."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @classmethod
    def of(cls, d: np.ndarray) -> _Rays:
        """Rays along directions d [N, 3] (any length)."""
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        return cls(*(np.ascontiguousarray(d[:, i], dtype=np.float32) for i in range(3)))

    def points(self, t: np.ndarray, n: np.ndarray) -> np.ndarray:
        """World points [K, 3] at distances t [K] along rays n [K]."""
        return _CAMERA + t[:, None] * np.stack([self.x[n], self.y[n], self.z[n]], -1)


@dataclasses.dataclass(frozen=True)
class _Quadric:
    """An ellipsoid placed in world space: points p with (p - center)^T matrix (p - center) = 1."""

    matrix: np.ndarray
    center: np.ndarray
    reach: float  # radius of a sphere around the centre that holds the ellipsoid

    @classmethod
    def place(cls, e: _Ellipsoid, rot: np.ndarray) -> _Quadric:
        """Ellipsoid e of head space, turned by the head-to-world rotation rot [3, 3]."""
        m = e.axes / e.radii[:, None]
        matrix = (rot @ (m.T @ m) @ rot.T).astype(np.float32)
        return cls(matrix, (rot @ e.center).astype(np.float32), float(e.radii.max()))

    def intersect(self, rays: _Rays) -> tuple[np.ndarray, np.ndarray]:
        """Distances where the rays enter and leave, [N] each; inf where they miss."""
        near = np.full(rays.x.shape, np.inf, dtype=np.float32)
        far = near.copy()
        oc = self.center - _CAMERA
        distance = float(np.linalg.norm(oc))
        # Only rays inside the cone that holds the bounding sphere can hit: small parts test few rays.
        u = oc / distance
        k = np.flatnonzero(rays.x * u[0] + rays.y * u[1] + rays.z * u[2] >= _cone_cos(self.reach, distance))
        x, y, z = rays.x[k], rays.y[k], rays.z[k]
        q = self.matrix
        qo = q @ -oc
        c = -oc @ qo - 1
        a = q[0, 0] * x * x + q[1, 1] * y * y + q[2, 2] * z * z
        a += 2 * (q[0, 1] * x * y + q[0, 2] * x * z + q[1, 2] * y * z)
        b = qo[0] * x + qo[1] * y + qo[2] * z
        disc = b * b - a * c
        root = np.sqrt(np.maximum(disc, 0))
        entry = (-b - root) / a
        hit = (disc > 0) & (entry > 0)  # the camera is outside every ellipsoid
        near[k[hit]] = entry[hit]
        far[k[hit]] = ((-b + root) / a)[hit]
        return near, far

    def gradient(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outward unit normals [K, 3] and implicit values [K] (0 on the surface, > 0 outside) at p [K, 3]."""
        v = p - self.center
        g = v @ self.matrix
        return g / np.linalg.norm(g, axis=-1, keepdims=True), np.einsum("ki,ki->k", v, g) - 1


def _cone_cos(radius: float, distance: float) -> float:
    """Cosine of the half-angle of the camera's cone around a sphere; -1 if the camera is inside it."""
    return math.sqrt(1 - (radius / distance) ** 2) if radius < distance else -1.0


def _hair_covers(face: _Face, p: np.ndarray) -> np.ndarray:
    """Whether the hair shell is hair at head-space points p [K, 3]: above the hairline, around the face."""
    azimuth = np.abs(np.arctan2(p[:, 0], p[:, 2]))
    opening = face.face_opening
    # The forehead's edge dips at the temples; behind the face the hair falls from the sides to the back.
    front = face.hairline - 0.15 * (azimuth / opening) ** 2
    behind = face.hair_side + (face.hair_back - face.hair_side) * np.clip(
        (azimuth - opening) / (math.pi - opening), 0, 1
    )
    # A smooth step between the two, so sideburns and long hair slope down instead of a sharp notch.
    w = np.clip((azimuth - opening) / _HAIR_SLOPE + 0.5, 0, 1)
    w = w * w * (3 - 2 * w)
    return p[:, 1] > front + (behind - front) * w


def _place(face: _Face, rot: np.ndarray) -> dict[str, _Quadric]:
    """Every shape of the face in world space, the head's turned by rot [3, 3]."""
    still = np.eye(3, dtype=np.float32)
    return {
        shape: _Quadric.place(face.shapes[shape], rot if space == "head" else still)
        for _, shape, _, space in _SURFACES
    }


def _trace(face: _Face, rot: np.ndarray, rays: _Rays, placed: dict[str, _Quadric]):
    """Nearest surface along each ray: distance [N] (inf: none) and surface index [N] (-1: none)."""
    best = np.full(rays.x.shape, np.inf, dtype=np.float32)
    surface = np.full(rays.x.shape, -1, dtype=np.int8)
    crossings = {}
    for index, (_, shape, crossing, _) in enumerate(_SURFACES):
        if shape not in crossings:
            crossings[shape] = placed[shape].intersect(rays)
        t = crossings[shape][crossing]
        if shape == "hair":
            n = np.flatnonzero(np.isfinite(t))
            bald = n[~_hair_covers(face, rays.points(t[n], n) @ rot)]  # @ rot: world -> head space
            t = t.copy()
            t[bald] = np.inf
        closer = t < best
        best[closer] = t[closer]
        surface[closer] = index
    return best, surface


def _camera_rays(size: int) -> _Rays:
    """Rays [size²] through the pixel centres of a size² image, rows top to bottom."""
    centers = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1) * _VIEW_HALF
    x, y = np.meshgrid(centers, -centers)
    return _Rays.of(np.stack([x, y, np.full_like(x, -_CAMERA_DISTANCE)], -1).reshape(-1, 3))


# --- materials -----------------------------------------------------------------------------------------


def _soft(x: np.ndarray, edge: float) -> np.ndarray:
    """1 where x < 0, 0 where x > edge, linear between: a soft inside test for painted shapes."""
    return np.clip(-x / edge, 0, 1)


def _paint(color: np.ndarray, amount: np.ndarray, paint) -> np.ndarray:
    return color + (paint - color) * amount[:, None]


def _skin_albedo(face: _Face, p: np.ndarray, surface: str) -> np.ndarray:
    """sRGB albedo [K, 3] of cranium and jaw at head-space points [K, 3]: skin with eyes, brows and mouth."""
    color = np.broadcast_to(face.skin, p.shape).astype(np.float32)
    front = p[:, 2] > 0  # features are painted on the face, not on the back of the head
    for paint, (x, y), (half_width, below, above) in _features(face):
        # Each feature is painted inside its box only: most of the skin needs no work.
        dx, dy = p[:, 0] - x, p[:, 1] - y
        k = np.flatnonzero(front & (np.abs(dx) < half_width) & (dy > -below) & (dy < above))
        color[k] = paint(face, dx[k], dy[k], color[k])
    return color


def _features(face: _Face) -> list:
    """(paint, centre, box) of each painted feature; paint(face, x, y, color) takes x, y from the centre."""
    features = []
    for side in (-1.0, 1.0):
        eye_box = (1.7 * face.eye_width, 0.22, 0.42)  # above the eye: the brow
        features.append((functools.partial(_eye, side=side), (side * face.eye_spacing, face.eye_y), eye_box))
        features.append((_cheek, (side * 0.42, -0.35), (0.3, 0.25, 0.25)))
    features.append((_mouth, (0.0, face.mouth_y), (1.1 * face.mouth_width, 0.12, 0.12)))
    return features


def _eye(face: _Face, x: np.ndarray, y: np.ndarray, color: np.ndarray, side: float) -> np.ndarray:
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


def _cheek(face: _Face, x: np.ndarray, y: np.ndarray, color: np.ndarray) -> np.ndarray:
    """A faint blush."""
    return _paint(color, 0.12 * np.clip(1 - (x / 0.28) ** 2 - (y / 0.22) ** 2, 0, 1) ** 2, _LIPS)


def _mouth(face: _Face, x: np.ndarray, y: np.ndarray, color: np.ndarray) -> np.ndarray:
    """Lips, the upper one in shade, and the line between them, smiling a little."""
    mx, my = x / face.mouth_width, y / 0.055
    smile = 0.5 * mx**2
    lips = _soft(np.abs(my - smile + 0.1) - (1 - mx**2) * (1.0 + 0.2 * (my < smile)), 0.25)
    color = _paint(color, lips, face.lips)
    color = _paint(color, lips * np.clip(my - smile, 0, 1) * 0.35, face.lips * 0.6)
    line = _soft(np.abs(my - smile) - 0.12, 0.15) * _soft(np.abs(mx) - 1, 0.1)
    return _paint(color, line * 0.9, face.lips * 0.3)


def _nose_albedo(face: _Face, p: np.ndarray, surface: str) -> np.ndarray:
    """sRGB albedo [K, 3] of the nose: skin with nostrils on its underside."""
    u = face.shapes["nose"].local(p)
    nostril = sum(
        _soft(((u[:, 0] - 0.45 * side) / 0.32) ** 2 + ((u[:, 2] - 0.3) / 0.45) ** 2 - 1, 0.5)
        for side in (-1.0, 1.0)
    )
    nostril = np.clip(nostril * np.clip((-u[:, 1] - 0.5) / 0.2, 0, 1), 0, 1)
    return _paint(np.broadcast_to(face.skin * 0.96, p.shape), nostril * 0.8, face.skin * 0.25)


def _wing_albedo(face: _Face, p: np.ndarray, surface: str) -> np.ndarray:
    return np.broadcast_to(face.skin * 0.96, p.shape)


def _ear_albedo(face: _Face, p: np.ndarray, surface: str) -> np.ndarray:
    """sRGB albedo [K, 3] of an ear: slightly redder skin, a darker bowl in the middle."""
    u = face.shapes[surface].local(p)
    bowl = _soft(np.hypot(u[:, 1] / 0.7, u[:, 2] / 0.55) - 1, 0.3)
    return (face.skin * np.array([0.97, 0.9, 0.88])) * (1 - 0.3 * bowl[:, None])


def _hair_albedo(face: _Face, p: np.ndarray, surface: str) -> np.ndarray:
    """sRGB albedo [K, 3] of the hair: faint strands running down from a parting; darker inside."""
    azimuth = np.abs(np.arctan2(p[:, 0], p[:, 2]))  # |.|: mirror-symmetric, with a parting in the middle
    strands = 0.88 + 0.12 * np.sin(28 * azimuth + 4 * np.sin(3 * p[:, 1]))
    shade = 0.45 if surface == "hair_inside" else 1.0  # the inside of the hair gets little light
    return face.hair_color * (shade * strands[:, None])


def _neck_albedo(face: _Face, p: np.ndarray, surface: str) -> np.ndarray:
    return np.broadcast_to(face.skin * 0.88, p.shape)


def _shirt_albedo(face: _Face, p: np.ndarray, surface: str) -> np.ndarray:
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
_WARMTH = np.array([0.25, 0.03, -0.3])  # RGB gain per unit of warmth: orange light > 0, bluish < 0
_GLOSS = {"hair": 0.1, "hair_inside": 0.0, "shoulders": 0.0}
_SKIN_GLOSS = 0.06


# --- shading -------------------------------------------------------------------------------------------


def _shade(face: _Face, rot: np.ndarray, lighting: np.ndarray, rays: _Rays) -> tuple[np.ndarray, np.ndarray]:
    """Indices [H] of the rays that hit the head or body, and their lit sRGB colours [H, 3] in [0, 1].

    rot [3, 3] is the head-to-world rotation of the pose, lighting [5] a row of the lighting factor.
    """
    placed = _place(face, rot)
    t, surface = _trace(face, rot, rays, placed)
    hits = np.flatnonzero(surface >= 0)
    surface = surface[hits]
    albedo = np.empty((len(hits), 3), dtype=np.float32)
    normal = np.empty((3, len(hits)), dtype=np.float32)  # components first: fast elementwise maths
    gloss = np.empty(len(hits), dtype=np.float32)
    for index, (name, shape, crossing, space) in enumerate(_SURFACES):
        j = np.flatnonzero(surface == index)
        if len(j) == 0:
            continue
        p = rays.points(t[hits[j]], hits[j])
        g, _ = placed[shape].gradient(p)
        if name in _BLENDED:
            # Near the seam the other shape's normal counts almost as much: a smooth union's shading.
            other, value = placed[_BLENDED[name]].gradient(p)
            g = g + other * np.exp(-np.maximum(value, 0) / _SMOOTH_UNION)[:, None]
            g /= np.linalg.norm(g, axis=-1, keepdims=True)
        normal[:, j] = (-g if crossing else g).T
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


def _background_image(background: np.ndarray, size: int) -> np.ndarray:
    """sRGB background [size², 3] in [0, 1] from a background vector [10]; unlit, the same every frame."""
    first, second = background[0:3], background[3:6]
    angle, frequency, stripes, checker = background[6:10]
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    u, v = np.meshgrid(coords, -coords)
    along = u * np.cos(angle) + v * np.sin(angle)
    across = -u * np.sin(angle) + v * np.cos(angle)
    gradient = 0.5 + along / (2 * math.sqrt(2))
    wave = np.sin(math.pi * frequency * along)
    # tanh sharpens sinusoids into bands with soft edges, which the box filter then antialiases; cos
    # across (even) keeps the checker the same under a mirror, which maps the angle to pi - angle.
    band = 0.5 + 0.5 * np.tanh(4 * wave)
    check = 0.5 + 0.5 * np.tanh(4 * wave * np.cos(math.pi * frequency * across))
    mix = (1 - stripes - checker) * gradient + stripes * band + checker * check
    return (first + (second - first) * mix[..., None]).reshape(-1, 3).astype(np.float32)


def _downsample(image: np.ndarray, s: int) -> np.ndarray:
    """Box filter [H*s, W*s, ...] -> [H, W, ...] by s x s means (strided sums: no slow reductions)."""
    return sum(image[i::s, j::s] for i in range(s) for j in range(s)) / (s * s)


# --- checks --------------------------------------------------------------------------------------------


def _check(name: str, value, shape: tuple) -> np.ndarray:
    """A factor as float32 of `shape` (None: any length), or a ValueError naming it and the expected shape."""
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, array.shape, strict=False)
    ):
        expected = "[" + ", ".join("T" if s is None else str(s) for s in shape) + "]"
        raise ValueError(
            f"{name} has shape {list(array.shape)}, expected {expected} "
            f"({', '.join(FACTOR_NAMES[name])}); build factors with sample_factors()"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values: {array.tolist()}")
    return array


def _check_identity(identity) -> np.ndarray:
    identity = _check("identity", identity, (len(IDENTITY_NAMES),))
    bad = [f"{n}={v:.3g}" for n, v in zip(IDENTITY_NAMES, identity, strict=True) if not 0 <= v <= 1]
    if bad:
        raise ValueError(f"identity values must be in [0, 1]; got {', '.join(bad)}")
    return identity


def _check_background(background) -> np.ndarray:
    background = _check("background", background, (len(FACTOR_NAMES["background"]),))
    stripes, checker = background[8:10]
    if min(stripes, checker) < 0 or stripes + checker > 1:
        raise ValueError(
            f"background stripes={stripes:.3g} and checker={checker:.3g} must be >= 0 with a sum <= 1 "
            "(they are weights over the gradient)"
        )
    return background


def _check_resolution(resolution: int) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer) or resolution < 8:
        raise ValueError(f"resolution={resolution!r} must be an integer of at least 8 pixels")
    return int(resolution)


# --- public API ----------------------------------------------------------------------------------------


def _render(identity, pose, lighting, background, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 [T, R, R, 3] and foreground coverage float32 [T, R, R] in [0, 1]."""
    resolution = _check_resolution(resolution)
    face = _face(_check_identity(identity))
    pose = _check("pose", pose, (None, 3))
    lighting = _check("lighting", lighting, (None, len(FACTOR_NAMES["lighting"])))
    if len(pose) != len(lighting):
        raise ValueError(f"pose has {len(pose)} frames but lighting {len(lighting)}; give both per frame")
    s = _SUPERSAMPLE
    size = resolution * s
    backdrop = _background_image(_check_background(background), size)
    rays = _camera_rays(size)
    frames = np.empty((len(pose), resolution, resolution, 3), dtype=np.uint8)
    alpha = np.empty((len(pose), resolution, resolution), dtype=np.float32)
    # Frame by frame: with one rotation, every per-shape quantity is a scalar for numpy to broadcast.
    for i, rot in enumerate(_rotation(*pose.T)):
        hits, lit = _shade(face, rot, lighting[i], rays)
        color = backdrop.copy()
        color[hits] = lit
        hit = np.zeros(size * size, dtype=np.float32)
        hit[hits] = 1
        frames[i] = np.round(_downsample(color.reshape(size, size, 3), s) * 255).astype(np.uint8)
        alpha[i] = _downsample(hit.reshape(size, size), s)
    return frames, alpha


def render_frame(identity, pose, lighting, background, resolution: int, return_mask: bool = False):
    """One frame uint8 [R, R, 3] from identity [20], pose [3], lighting [5], background [10].

    With return_mask, also the foreground coverage float32 [R, R] in [0, 1] (0: background only).
    """
    frames, alpha = _render(
        identity, np.asarray(pose)[None], np.asarray(lighting)[None], background, resolution
    )
    return (frames[0], alpha[0]) if return_mask else frames[0]


def render_video(factors: VideoFactors, resolution: int, return_mask: bool = False):
    """A video uint8 [T, R, R, 3] of `factors`; with return_mask also coverage float32 [T, R, R] in [0, 1]."""
    frames, alpha = _render(factors.identity, factors.pose, factors.lighting, factors.background, resolution)
    return (frames, alpha) if return_mask else frames


def landmarks(identity, pose, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (x right, y down) [..., 6, 2] of LANDMARK_NAMES and their visibility [..., 6] (bool).

    `pose` is [3] or [..., 3]. "right" and "left" are the subject's own sides, as in face-landmark sets:
    the right eye is on the image's left when the face looks at the camera. A landmark is visible when
    nothing else is nearer along its camera ray.
    """
    resolution = _check_resolution(resolution)
    face = _face(_check_identity(identity))
    pose = np.asarray(pose, dtype=np.float32)
    if pose.shape[-1:] != (3,) or not np.isfinite(pose).all():
        raise ValueError(f"pose has shape {list(pose.shape)}; expected finite [..., 3] (yaw, pitch, roll)")
    batch = pose.shape[:-1]
    rot = _rotation(*pose.reshape(-1, 3).T)
    shapes = face.shapes
    xs = np.array([-face.eye_spacing, face.eye_spacing, 0.0], dtype=np.float32)
    ys = np.array([face.eye_y, face.eye_y, face.mouth_y], dtype=np.float32)
    painted = np.stack([xs, ys, _surface_z([shapes["cranium"], shapes["jaw"]], xs, ys)], -1)
    nose = shapes["nose"]
    right, left = shapes["right_ear"], shapes["left_ear"]
    outer = [
        nose.center + nose.radii[2] * nose.axes[2],
        right.center - right.radii[0] * right.axes[0],
        left.center + left.radii[0] * left.axes[0],
    ]
    points = np.concatenate([outer[:1], painted, outer[1:]]).astype(np.float32)
    offset = points @ rot.transpose(0, 2, 1) - _CAMERA  # [F, 6, 3], camera to landmark
    distance = np.linalg.norm(offset, axis=-1)
    nearest = np.stack(
        [_trace(face, r, _Rays.of(o), _place(face, r))[0] for r, o in zip(rot, offset, strict=True)]
    )
    visible = distance <= nearest + _VISIBLE_SLACK
    scale = _CAMERA_DISTANCE / (-offset[..., 2] * _VIEW_HALF)  # onto the plane of the head's centre
    u, v = offset[..., 0] * scale, offset[..., 1] * scale
    xy = np.stack([(u + 1) / 2 * resolution - 0.5, (1 - v) / 2 * resolution - 0.5], -1)
    return xy.reshape(*batch, len(points), 2), visible.reshape(*batch, len(points))


# --- sampling --------------------------------------------------------------------------------------------


def _trajectory(rng: np.random.Generator, times: np.ndarray, low: float, high: float, max_hz: float):
    """A smooth random path [T] inside [low, high]: a random centre plus a normalised sum of sinusoids."""
    hz = rng.uniform(_SLOWEST_HZ, max_hz, _SINUSOIDS)
    phase = rng.uniform(0, 2 * math.pi, _SINUSOIDS)
    weight = rng.uniform(0.2, 1.0, _SINUSOIDS)
    wave = (weight * np.sin(2 * math.pi * hz * times[:, None] + phase)).sum(-1) / weight.sum()
    centre = rng.uniform(0, 1)
    swing = min(centre, 1 - centre) * rng.uniform(0.4, 1.0)
    return low + (high - low) * (centre + swing * wave)


def _sample_background(rng: np.random.Generator) -> np.ndarray:
    """A background vector [10]: two related colours, a gradient, stripes or checker."""
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.05, 0.6), rng.uniform(0.2, 0.95)
    first = colorsys.hsv_to_rgb(hue, saturation, value)
    second = colorsys.hsv_to_rgb(
        (hue + rng.uniform(-0.15, 0.15)) % 1,
        np.clip(saturation + rng.uniform(-0.2, 0.2), 0, 1),
        np.clip(value + rng.choice([-1, 1]) * rng.uniform(0.1, 0.45), 0.05, 1),
    )
    kind = rng.integers(3)  # gradient, stripes, checker
    strength = rng.uniform(0.5, 1.0)
    pattern = [rng.uniform(0, math.pi), rng.uniform(1.5, 5.0), strength * (kind == 1), strength * (kind == 2)]
    return np.array([*first, *second, *pattern], dtype=np.float32)


def sample_factors(rng, frames: int, fps: float = 25.0) -> VideoFactors:
    """Random factors of one video of `frames` frames; `rng` is a numpy Generator or a seed."""
    if frames < 1 or fps <= 0:
        raise ValueError(f"frames={frames} must be at least 1 and fps={fps} positive")
    rng = np.random.default_rng(rng)
    identity = rng.uniform(0, 1, len(IDENTITY_NAMES)).astype(np.float32)
    background = _sample_background(rng)
    times = np.arange(frames) / fps
    paths = {name: _trajectory(rng, times, *spec) for name, spec in _MOTION.items()}
    pose = np.stack([paths[n] for n in FACTOR_NAMES["pose"]], -1).astype(np.float32)
    lighting = np.stack([paths[n] for n in FACTOR_NAMES["lighting"]], -1).astype(np.float32)
    return VideoFactors(identity, background, pose, lighting, float(fps))


def video_name(index: int) -> str:
    """The dataset name of video `index`."""
    return f"video_{index:06d}"


def _make_video(job: tuple[int, int, int, int, float]) -> tuple[str, np.ndarray, dict[str, list]]:
    """Render video `index` of a dataset: its name, frames and factors depend only on (seed, index)."""
    seed, index, frames, resolution, fps = job
    factors = sample_factors(np.random.default_rng([seed, index]), frames, fps)
    record = {name: getattr(factors, name).tolist() for name in FACTOR_NAMES}
    return video_name(index), render_video(factors, resolution), record


def synthesize(
    out: str | Path,
    videos: int,
    frames: int,
    resolution: int,
    seed: int = 0,
    fps: float = 25.0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write `videos` videos uint8 [frames, R, R, 3] and their factors as a dataset (folder or .zip) at `out`.

    Videos already in a folder dataset are skipped, so an interrupted run resumes where it stopped.
    """
    from tqdm import tqdm  # noqa: PLC0415 - only writing datasets needs it

    from stylevid.data.format import DatasetWriter  # noqa: PLC0415 - the renderer alone needs numpy only

    for name, value in (("videos", videos), ("frames", frames), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    resolution = _check_resolution(resolution)
    if not fps > 0:
        raise ValueError(f"fps={fps!r} must be a positive number of frames per second")
    out = Path(out)
    with DatasetWriter(out, float(fps), resolution, factor_names=FACTOR_NAMES) as writer:
        todo = [i for i in range(videos) if not writer.has_video(video_name(i))]
        jobs = [(seed, i, frames, resolution, float(fps)) for i in todo]
        with tqdm(
            total=videos, initial=videos - len(todo), desc="synth", unit="video", disable=not progress
        ) as bar:
            if workers == 1 or len(jobs) < 2:
                results = map(_make_video, jobs)
                pool = None
            else:
                pool = multiprocessing.Pool(min(workers, len(jobs)))
                # Small chunks keep the bar moving and the workers evenly loaded.
                results = pool.imap(_make_video, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers))))
            try:
                for name, video, factors in results:
                    writer.add_video(name, video, factors=factors)
                    bar.update()
            finally:
                if pool is not None:
                    pool.terminate()
    return out


def render_speed(resolution: int, frames: int = 64) -> float:
    """Frames per second of render_video at resolution² in this process (one video of `frames` frames)."""
    factors = sample_factors(0, frames)
    render_video(sample_factors(1, 2), resolution)  # warm-up: first-call costs of numpy
    start = time.perf_counter()
    render_video(factors, resolution)
    return frames / (time.perf_counter() - start)


def _synth(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        path = synthesize(
            args.out, args.videos, args.frames, args.resolution, args.seed, args.fps, args.workers
        )
    except ValueError as exc:
        raise SystemExit(f"stylevid synth: {exc}") from None
    print(
        f"wrote {args.videos} videos of {args.frames} frames at {args.resolution}² to {path}"
        f" in {time.monotonic() - started:.0f} s"
    )
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `synth` command (render the synthetic dataset) to a CLI's subparsers; returns its parser."""
    synth = subparsers.add_parser(
        "synth", help="render the synthetic face-video dataset, whose factors are known for every frame"
    )
    synth.add_argument("--out", required=True, help="dataset folder (an interrupted run resumes) or .zip")
    synth.add_argument("--videos", type=int, required=True, help="number of videos")
    synth.add_argument("--frames", type=int, default=64, help="frames per video (default 64)")
    synth.add_argument("--resolution", type=int, default=64, help="frame size in pixels (default 64)")
    synth.add_argument("--seed", type=int, default=0, help="video i depends only on (seed, i) (default 0)")
    synth.add_argument("--fps", type=float, default=25.0, help="frame rate of the motion (default 25)")
    synth.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    synth.set_defaults(run=_synth)
    return synth
