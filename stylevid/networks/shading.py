"""The lighting prior: a directional and an ambient light, set by the lighting code, shade albedo and normals.

With `GeneratorConfig.shading` the foreground branch is styled by identity and pose only and paints
a surface — albedo and normals — which a Lambertian light computed from the lighting code shades.
The lighting code then has one way into the frame: the light. It cannot repaint a face or move it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stylevid.networks.layers import FullyConnected
from stylevid.shapes import assert_shape

SURFACE_CHANNELS = 6  # albedo RGB, normal xyz
_TOWARDS_CAMERA = (0.0, 0.0, 1.0)  # normals and light start facing the camera, so neither is degenerate


class LambertianShading(nn.Module):
    """surface [B, 6, H, W] (albedo about [-1, 1], raw normal) + lighting W [B, w] -> RGB [B, 3, H, W].

    rgb = albedo * colour * (ambient + key * max(0, n . l)), in [0, 1] before the map to [-1, 1].
    """

    def __init__(self, w_dim: int):
        super().__init__()
        self.w_dim = w_dim
        self.light = FullyConnected(w_dim, 8)  # direction 3, key 1, ambient 1, colour gains 3
        self.register_buffer("towards_camera", torch.tensor(_TOWARDS_CAMERA), persistent=False)

    def lights(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """The light of lighting W [B, w]: direction [B, 3] (unit), key [B], ambient [B], colour [B, 3]."""
        p = self.light(w.float())
        return {
            "direction": F.normalize(p[:, :3] + self.towards_camera, dim=1),
            "key": F.softplus(p[:, 3]),
            "ambient": F.softplus(p[:, 4]),
            "colour": torch.exp(0.25 * torch.tanh(p[:, 5:8])),  # within about +-28 % per channel
        }

    def forward(self, surface: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        assert_shape(surface, [None, SURFACE_CHANNELS, None, None], "surface")
        assert_shape(w, [surface.shape[0], self.w_dim], "lighting styles")
        light = {k: v.to(surface.dtype) for k, v in self.lights(w).items()}
        albedo = (surface[:, :3] + 1) / 2
        normal = F.normalize(surface[:, 3:] + self.towards_camera.to(surface.dtype)[:, None, None], dim=1)
        facing = (normal * light["direction"][:, :, None, None]).sum(dim=1, keepdim=True).clamp_min(0)
        shade = light["ambient"][:, None, None, None] + light["key"][:, None, None, None] * facing
        return albedo * light["colour"][:, :, None, None] * shade * 2 - 1
