"""Ray casting: the camera's rays, the face's ellipsoids placed by the pose, the nearest surface per ray.

Each pixel casts a perspective ray against the ellipsoids moved by the pose and keeps the nearest
surface, so far-side features and ears hide themselves.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stylevid.data.synthetic.head import Ellipsoid, Face, hair_covers

VIEW_HALF = 1.5  # half the frame's width in head units, at the head's depth
_VIEW_CENTER_Y = -0.15  # below the head centre, so the neck and shoulders fill the bottom
CAMERA_DISTANCE = 8.0  # mild perspective: the near ear looks a little larger than the far one
CAMERA = np.array([0.0, _VIEW_CENTER_Y, CAMERA_DISTANCE], dtype=np.float32)

# Surfaces a ray may stop at: (name, shape, which crossing of the shape, space). Order = surface index.
SURFACES = [
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


@dataclasses.dataclass(frozen=True)
class Rays:
    """Unit directions [N] (by component) of rays from the camera."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray

    @classmethod
    def of(cls, d: np.ndarray) -> Rays:
        """Rays along directions d [N, 3] (any length)."""
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        return cls(*(np.ascontiguousarray(d[:, i], dtype=np.float32) for i in range(3)))

    def points(self, t: np.ndarray, n: np.ndarray) -> np.ndarray:
        """World points [K, 3] at distances t [K] along rays n [K]."""
        return CAMERA + t[:, None] * np.stack([self.x[n], self.y[n], self.z[n]], -1)


@dataclasses.dataclass(frozen=True)
class Quadric:
    """An ellipsoid placed in world space: points p with (p - center)^T matrix (p - center) = 1."""

    matrix: np.ndarray
    center: np.ndarray
    reach: float  # radius of a sphere around the centre that holds the ellipsoid

    @classmethod
    def place(cls, e: Ellipsoid, rot: np.ndarray) -> Quadric:
        """Ellipsoid e of head space, turned by the head-to-world rotation rot [3, 3]."""
        m = e.axes / e.radii[:, None]
        matrix = (rot @ (m.T @ m) @ rot.T).astype(np.float32)
        return cls(matrix, (rot @ e.center).astype(np.float32), float(e.radii.max()))

    def intersect(self, rays: Rays) -> tuple[np.ndarray, np.ndarray]:
        """Distances where the rays enter and leave, [N] each; inf where they miss."""
        near = np.full(rays.x.shape, np.inf, dtype=np.float32)
        far = near.copy()
        oc = self.center - CAMERA
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


def place(face: Face, rot: np.ndarray) -> dict[str, Quadric]:
    """Every shape of the face in world space, the head's turned by rot [3, 3]."""
    still = np.eye(3, dtype=np.float32)
    return {
        shape: Quadric.place(face.shapes[shape], rot if space == "head" else still)
        for _, shape, _, space in SURFACES
    }


def trace(face: Face, rot: np.ndarray, rays: Rays, placed: dict[str, Quadric]):
    """Nearest surface along each ray: distance [N] (inf: none) and surface index [N] (-1: none)."""
    best = np.full(rays.x.shape, np.inf, dtype=np.float32)
    surface = np.full(rays.x.shape, -1, dtype=np.int8)
    crossings = {}
    for index, (_, shape, crossing, _) in enumerate(SURFACES):
        if shape not in crossings:
            crossings[shape] = placed[shape].intersect(rays)
        t = crossings[shape][crossing]
        if shape == "hair":
            n = np.flatnonzero(np.isfinite(t))
            bald = n[~hair_covers(face, rays.points(t[n], n) @ rot)]  # @ rot: world -> head space
            t = t.copy()
            t[bald] = np.inf
        closer = t < best
        best[closer] = t[closer]
        surface[closer] = index
    return best, surface


def camera_rays(size: int) -> Rays:
    """Rays [size²] through the pixel centres of a size² image, rows top to bottom."""
    centers = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1) * VIEW_HALF
    x, y = np.meshgrid(centers, -centers)
    return Rays.of(np.stack([x, y, np.full_like(x, -CAMERA_DISTANCE)], -1).reshape(-1, 3))
