"""Rigid fits of point clouds and their rotations as head angles: the geometry of the FaceMesh pose.

rigid_fit is Umeyama's closed form (1991): the scale, rotation and translation that carry a reference
cloud onto each measured one in least squares, a proper rotation (never a reflection). head_angles
reads a rotation in the synthetic renderer's convention (stylevid.data.synthetic.head.rotation): head
to world R = tilt(roll) @ turn(yaw) @ nod(pitch), with x right, y up and z towards the camera, so yaw > 0
turns the nose to the image's right, pitch > 0 lifts it and roll > 0 tilts the head counter-clockwise.
Both are batched torch functions, differentiable wherever the fit is unique.
"""

from __future__ import annotations

import torch


def rigid_fit(
    points: torch.Tensor, reference: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scale [N], rotation [N, D, D], translation [N, D] minimising |points - (s R reference + t)|².

    points [N, M, D], reference [M, D] (or [N, M, D]); D = 3 for meshes, 2 for face alignment.
    """
    reference = reference.to(points).expand_as(points)
    mean_p, mean_r = points.mean(dim=1, keepdim=True), reference.mean(dim=1, keepdim=True)
    p, r = points - mean_p, reference - mean_r
    covariance = p.transpose(1, 2) @ r / points.shape[1]  # [N, 3, 3]
    u, singular, vh = torch.linalg.svd(covariance)
    sign = torch.linalg.det(u) * torch.linalg.det(vh)  # -1 where the best orthogonal map is a reflection
    flip = torch.ones_like(singular)
    flip[:, -1] = sign
    rotation = u @ (flip[:, :, None] * vh)
    scale = (singular * flip).sum(dim=1) / r.square().sum(dim=(1, 2)) * points.shape[1]
    translation = mean_p[:, 0] - scale[:, None] * (rotation @ mean_r[:, 0, :, None])[..., 0]
    return scale, rotation, translation


def head_angles(rotation: torch.Tensor) -> torch.Tensor:
    """Yaw, pitch, roll [N, 3] in radians of head-to-world rotations [N, 3, 3] (module doc's convention)."""
    # R = Rz(roll) Ry(yaw) Rx(-pitch): its bottom row is (-sin yaw, -cos yaw sin pitch, cos yaw cos pitch)
    # and its first column (cos roll cos yaw, sin roll cos yaw, -sin yaw).
    yaw = torch.atan2(-rotation[:, 2, 0], torch.hypot(rotation[:, 2, 1], rotation[:, 2, 2]))
    pitch = torch.atan2(-rotation[:, 2, 1], rotation[:, 2, 2])
    roll = torch.atan2(rotation[:, 1, 0], rotation[:, 0, 0])
    return torch.stack([yaw, pitch, roll], dim=1)
