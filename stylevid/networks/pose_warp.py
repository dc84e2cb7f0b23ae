"""The pose prior: the pose code turns a canonical face instead of repainting it.

With `GeneratorConfig.pose_warp` the foreground branch paints one canonical face per video, styled by
identity alone (and by lighting where there is no shading prior). Each frame's pose code sets a
head rotation (yaw, pitch, roll) and a small residual flow; the canonical layers are resampled as
if painted on a dome (a smooth bump of depth HEAD_RADIUS: a sphere's rim would crease the warp)
turned by that rotation, and the normals are rotated with it. The pose code
then has one way into the frame — where the face's pixels go — and identity none into the pose.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stylevid.networks.layers import FullyConnected
from stylevid.shapes import assert_shape

FLOW_SIZE = 8  # the residual flow's grid, upsampled to the frame
HEAD_RADIUS = 0.8  # of the dome the canonical face is painted on, in half frame widths
ANGLE_SCALE = 0.5  # radians per unit of the angle layer's output: about the data's range at the start
FLOW_SCALE = 0.05  # frame half-widths per unit of the flow layer's output


def rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotations [B, 3, 3] from yaw (about y), pitch (about x), roll (about z) [B, 3]: R = Rz Rx Ry."""
    yaw, pitch, roll = angles.unbind(dim=1)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    ry = torch.stack([yaw.cos(), zero, yaw.sin(), zero, one, zero, -yaw.sin(), zero, yaw.cos()], 1)
    rx = torch.stack([one, zero, zero, zero, pitch.cos(), -pitch.sin(), zero, pitch.sin(), pitch.cos()], 1)
    rz = torch.stack([roll.cos(), -roll.sin(), zero, roll.sin(), roll.cos(), zero, zero, zero, one], 1)
    return rz.reshape(-1, 3, 3) @ rx.reshape(-1, 3, 3) @ ry.reshape(-1, 3, 3)


class PoseWarp(nn.Module):
    """Pose styles [B, w] -> the canonical layers [B, C, R, R] turned: warped layers [B, C, R, R].

    Channels `normals` (a slice, or None) hold normal vectors and are rotated as well as moved.
    """

    def __init__(self, w_dim: int, resolution: int):
        super().__init__()
        self.w_dim, self.resolution = w_dim, resolution
        self.angles = FullyConnected(w_dim, 3)
        self.flow = FullyConnected(w_dim, 2 * FLOW_SIZE**2)
        axis = (torch.arange(resolution) + 0.5) / resolution * 2 - 1
        y, x = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer("xy", torch.stack([x, y], dim=-1), persistent=False)  # [R, R, 2], y down

    def forward(self, layers: torch.Tensor, w: torch.Tensor, normals: slice | None = None) -> torch.Tensor:
        assert_shape(layers, [None, None, self.resolution, self.resolution], "canonical layers")
        assert_shape(w, [layers.shape[0], self.w_dim], "pose styles")
        w = w.float()
        rot = rotation(ANGLE_SCALE * self.angles(w))  # [B, 3, 3], camera looks along -z, y down
        # A frame pixel shows the point of the turned dome in front of it (z > 0 faces the camera);
        # its canonical position is that point turned back.
        xy = self.xy[None].expand(len(w), -1, -1, -1)
        z = HEAD_RADIUS * torch.exp(-xy.square().sum(-1, keepdim=True) / HEAD_RADIUS**2)
        seen = torch.cat([xy, z], dim=-1)  # [B, R, R, 3]
        canonical = torch.einsum("bji,bhwj->bhwi", rot, seen)  # R^T p
        flow = F.interpolate(
            FLOW_SCALE * self.flow(w).reshape(-1, 2, FLOW_SIZE, FLOW_SIZE),
            size=self.resolution,
            mode="bilinear",
            align_corners=False,
        )
        grid = canonical[..., :2] + flow.permute(0, 2, 3, 1)
        out = F.grid_sample(
            layers, grid.to(layers.dtype), mode="bilinear", padding_mode="border", align_corners=False
        )
        if normals is not None:
            turned = torch.einsum("bij,bjhw->bihw", rot.to(out.dtype), out[:, normals])
            out = torch.cat([out[:, : normals.start], turned, out[:, normals.stop :]], dim=1)
        return out
