"""An identity vector turned into a head: ellipsoids in head space (head units) and sRGB colours.

The head is a union of ellipsoids (cranium, jaw, nose, the nostrils' wings, ears, a hair shell) in head
space, on a neck and shoulders in world space; eyes, brows and mouth are painted on its surface later.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math

import numpy as np

from stylevid.data.synthetic.factors import IDENTITY_NAMES

_HAIR_SLOPE = 0.35  # azimuth (rad) over which the hairline goes down from the forehead to the sides

# sRGB colour stops, interpolated by the identity's [0, 1] values.
_SKIN = np.array(
    [[0.97, 0.82, 0.72], [0.90, 0.69, 0.55], [0.76, 0.53, 0.38], [0.55, 0.36, 0.24], [0.34, 0.22, 0.15]]
)
_HAIR = np.array([[0.88, 0.75, 0.50], [0.58, 0.42, 0.26], [0.30, 0.20, 0.12], [0.07, 0.06, 0.06]])
_RED_HAIR = np.array([[0.90, 0.55, 0.30], [0.70, 0.32, 0.14], [0.42, 0.16, 0.08], [0.16, 0.07, 0.05]])
_IRIS = np.array([[0.30, 0.50, 0.78], [0.32, 0.55, 0.38], [0.55, 0.45, 0.22], [0.36, 0.21, 0.10]])
LIPS = np.array([0.78, 0.33, 0.36])  # sRGB of the reddest lips (and of the cheeks' blush)


@dataclasses.dataclass(frozen=True)
class Ellipsoid:
    """Points p with |(axes @ (p - center)) / radii| = 1; the rows of `axes` are its local axes."""

    center: np.ndarray
    radii: np.ndarray
    axes: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3, dtype=np.float32))

    def local(self, p: np.ndarray) -> np.ndarray:
        """Points [N, 3] in the unit-sphere frame of the ellipsoid."""
        return ((p - self.center) @ self.axes.T) / self.radii


@dataclasses.dataclass(frozen=True)
class Face:
    """An identity turned into geometry (head units) and sRGB colours."""

    # By the shape names of trace.SURFACES; neck and shoulders in world space, the rest in head space.
    shapes: dict[str, Ellipsoid]
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


def _lerp(low: float, high: float, x: float) -> float:
    return low + (high - low) * x


def _stops(colors: np.ndarray, x: float) -> np.ndarray:
    """Piecewise-linear interpolation of colour stops [K, 3] at x in [0, 1]."""
    position = x * (len(colors) - 1)
    i = min(int(position), len(colors) - 2)
    return colors[i] + (colors[i + 1] - colors[i]) * (position - i)


def rotation(yaw, pitch, roll) -> np.ndarray:
    """Head-to-world rotations [..., 3, 3]: nod (pitch) first, then turn (yaw), then tilt (roll)."""
    yaw, pitch, roll = (np.asarray(a, dtype=np.float32) for a in (yaw, pitch, roll))
    zero, one = np.zeros_like(yaw), np.ones_like(yaw)
    (cy, cp, cr), (sy, sp, sr) = np.cos([yaw, pitch, roll]), np.sin([yaw, pitch, roll])
    turn = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*yaw.shape, 3, 3)
    # Pitch > 0 lifts the nose (+z towards +y): a rotation about x by -pitch.
    nod = np.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], -1).reshape(*yaw.shape, 3, 3)
    tilt = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*yaw.shape, 3, 3)
    return (tilt @ turn @ nod).astype(np.float32)


def surface_z(parts: list[Ellipsoid], x, y):
    """Depth of the front surface of axis-aligned ellipsoids at head-space (x, y); -inf off them."""
    z = np.full(np.broadcast(x, y).shape, -np.inf, dtype=np.float32)
    for e in parts:
        inside = 1 - ((x - e.center[0]) / e.radii[0]) ** 2 - ((y - e.center[1]) / e.radii[1]) ** 2
        z = np.where(inside > 0, np.maximum(z, e.center[2] + e.radii[2] * np.sqrt(np.maximum(inside, 0))), z)
    return z


def face_of(identity: np.ndarray) -> Face:
    """The geometry and colours of one identity vector [20] in [0, 1]."""
    a = dict(zip(IDENTITY_NAMES, (float(v) for v in identity), strict=True))
    f32 = np.float32
    width = _lerp(0.70, 0.84, a["head_width"])
    height = _lerp(0.92, 1.04, a["head_height"])
    cranium = Ellipsoid(np.array([0, 0.1, -0.02], f32), np.array([width, height, 0.9], f32))
    jaw_width = width * _lerp(0.74, 0.92, a["jaw_width"])
    jaw = Ellipsoid(np.array([0, -0.36, 0.06], f32), np.array([jaw_width, 0.66, 0.74], f32))
    eye_y = 0.0
    nose_half = _lerp(0.15, 0.22, a["nose_length"])
    nose_width = _lerp(0.07, 0.11, a["nose_width"])
    base = -0.36  # the bottom of the nose, about halfway from the eyes to the mouth
    nose_y = base + 0.9 * nose_half
    nose = Ellipsoid(
        np.array([0, nose_y, surface_z([cranium, jaw], 0.0, nose_y) - 0.08], f32),
        np.array([nose_width, nose_half, 0.16], f32),
        rotation(0.0, -0.35, 0.0).T,  # tipped so the bottom of the nose sticks out further than the bridge
    )
    parts = {
        # The wings of the nostrils widen its base, so it reads as a nose and not a peg.
        f"{side_name}_wing": Ellipsoid(
            np.array(
                [side * 0.75 * nose_width, base + 0.045, surface_z([cranium, jaw], 0.0, base) - 0.03], f32
            ),
            np.array([0.045, 0.04, 0.055], f32),
        )
        for side_name, side in (("right", -1.0), ("left", 1.0))
    }
    ear_half = _lerp(0.17, 0.23, a["ear_size"])
    for side_name, side in (("right", -1.0), ("left", 1.0)):
        # Attached at the front, ears open backwards and so face a little forwards: seen from the front too.
        parts[f"{side_name}_ear"] = Ellipsoid(
            np.array([side * width * 0.98, -0.05, -0.12], f32),
            np.array([0.05, ear_half, 0.12], f32),
            rotation(-side * 0.6, 0.0, 0.0).T,
        )
    volume, length = a["hair_volume"], a["hair_length"]
    top = 0.1 + height + _lerp(0.04, 0.16, volume)
    bottom = _lerp(-0.75, -1.45, length)
    hair = Ellipsoid(
        np.array([0, (top + bottom) / 2, -0.07], f32),
        np.array(
            [width * _lerp(1.07, 1.2, volume), (top - bottom) / 2, 0.9 * _lerp(1.06, 1.16, volume)], f32
        ),
    )
    neck = Ellipsoid(np.array([0, -1.25, -0.12], f32), np.array([0.56 * width, 0.95, 0.5 * width], f32))
    shoulders = Ellipsoid(np.array([0, -1.98, -0.3], f32), np.array([2.0, 0.76, 0.62], f32))
    skin = _stops(_SKIN, a["skin_tone"]) + (a["skin_warmth"] - 0.5) * np.array([0.05, 0.0, -0.05])
    dark = a["hair_darkness"]
    hair_color = _stops(_HAIR, dark) + (_stops(_RED_HAIR, dark) - _stops(_HAIR, dark)) * a["hair_redness"]
    eye_width = _lerp(0.11, 0.15, a["eye_size"])
    return Face(
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
        lips=skin + (LIPS - skin) * _lerp(0.25, 0.7, a["lip_redness"]),
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


def hair_covers(face: Face, p: np.ndarray) -> np.ndarray:
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
