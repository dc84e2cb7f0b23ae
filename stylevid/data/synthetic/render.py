"""Frames, foreground masks and landmarks of the synthetic heads from their factor vectors.

Frames are traced at twice the resolution and box-filtered down. The background is not lit: it depends
on the background vector alone, as the generator's background branch does. Mirroring a frame left-right
equals rendering the mirrored factors (stylevid.data.index.MIRRORED_FACTORS).
"""

from __future__ import annotations

import math
import time

import numpy as np

from stylevid.data.synthetic.factors import (
    FACTOR_NAMES,
    VideoFactors,
    check_background,
    check_factor,
    check_identity,
    sample_factors,
)
from stylevid.data.synthetic.head import face_of, rotation, surface_z
from stylevid.data.synthetic.shade import shade
from stylevid.data.synthetic.trace import CAMERA, CAMERA_DISTANCE, VIEW_HALF, Rays, camera_rays, place, trace

LANDMARK_NAMES = ["nose_tip", "right_eye", "left_eye", "mouth", "right_ear", "left_ear"]
_SUPERSAMPLE = 2  # traced at 2x and box-filtered: clean silhouettes at 64²
_VISIBLE_SLACK = 1e-3  # a landmark lies on a surface; float error must not hide it


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


def check_resolution(resolution: int) -> int:
    """The frame side as an int, or a ValueError unless it is an integer of at least 8 pixels."""
    if isinstance(resolution, bool) or not isinstance(resolution, int | np.integer) or resolution < 8:
        raise ValueError(f"resolution={resolution!r} must be an integer of at least 8 pixels")
    return int(resolution)


def _render(identity, pose, lighting, background, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 [T, R, R, 3] and foreground coverage float32 [T, R, R] in [0, 1]."""
    resolution = check_resolution(resolution)
    face = face_of(check_identity(identity))
    pose = check_factor("pose", pose, (None, 3))
    lighting = check_factor("lighting", lighting, (None, len(FACTOR_NAMES["lighting"])))
    if len(pose) != len(lighting):
        raise ValueError(f"pose has {len(pose)} frames but lighting {len(lighting)}; give both per frame")
    s = _SUPERSAMPLE
    size = resolution * s
    backdrop = _background_image(check_background(background), size)
    rays = camera_rays(size)
    frames = np.empty((len(pose), resolution, resolution, 3), dtype=np.uint8)
    alpha = np.empty((len(pose), resolution, resolution), dtype=np.float32)
    # Frame by frame: with one rotation, every per-shape quantity is a scalar for numpy to broadcast.
    for i, rot in enumerate(rotation(*pose.T)):
        hits, lit = shade(face, rot, lighting[i], rays)
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
    resolution = check_resolution(resolution)
    face = face_of(check_identity(identity))
    pose = np.asarray(pose, dtype=np.float32)
    if pose.shape[-1:] != (3,) or not np.isfinite(pose).all():
        raise ValueError(f"pose has shape {list(pose.shape)}; expected finite [..., 3] (yaw, pitch, roll)")
    batch = pose.shape[:-1]
    rot = rotation(*pose.reshape(-1, 3).T)
    shapes = face.shapes
    xs = np.array([-face.eye_spacing, face.eye_spacing, 0.0], dtype=np.float32)
    ys = np.array([face.eye_y, face.eye_y, face.mouth_y], dtype=np.float32)
    painted = np.stack([xs, ys, surface_z([shapes["cranium"], shapes["jaw"]], xs, ys)], -1)
    nose = shapes["nose"]
    right, left = shapes["right_ear"], shapes["left_ear"]
    outer = [
        nose.center + nose.radii[2] * nose.axes[2],
        right.center - right.radii[0] * right.axes[0],
        left.center + left.radii[0] * left.axes[0],
    ]
    points = np.concatenate([outer[:1], painted, outer[1:]]).astype(np.float32)
    offset = points @ rot.transpose(0, 2, 1) - CAMERA  # [F, 6, 3], camera to landmark
    distance = np.linalg.norm(offset, axis=-1)
    nearest = np.stack(
        [trace(face, r, Rays.of(o), place(face, r))[0] for r, o in zip(rot, offset, strict=True)]
    )
    visible = distance <= nearest + _VISIBLE_SLACK
    scale = CAMERA_DISTANCE / (-offset[..., 2] * VIEW_HALF)  # onto the plane of the head's centre
    u, v = offset[..., 0] * scale, offset[..., 1] * scale
    xy = np.stack([(u + 1) / 2 * resolution - 0.5, (1 - v) / 2 * resolution - 0.5], -1)
    return xy.reshape(*batch, len(points), 2), visible.reshape(*batch, len(points))


def render_speed(resolution: int, frames: int = 64) -> float:
    """Frames per second of render_video at resolution² in this process (one video of `frames` frames)."""
    factors = sample_factors(0, frames)
    render_video(sample_factors(1, 2), resolution)  # warm-up: first-call costs of numpy
    start = time.perf_counter()
    render_video(factors, resolution)
    return frames / (time.perf_counter() - start)
