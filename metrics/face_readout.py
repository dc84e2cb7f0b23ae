"""The four factors of real-looking faces, measured without ground truth: the leakage readout for real data.

MTCNN (shipped inside facenet-pytorch) finds the largest confident face and its five landmarks (eyes,
nose, mouth corners) in each frame; from them:

- identity: the face embedder's unit vector of the aligned face; distance 1 - cos.
- pose (``pose="facemesh"``, the default): yaw, pitch and roll in radians from MediaPipe FaceMesh's 468
  landmarks in MediaPipe's crop of the face box (stylevid.metrics.facemesh), NaN where its face score is
  below MIN_SCORE. With ``pose="points"``, from MTCNN's five landmarks (pose_features): roll (radians,
  the eye line's angle), yaw (the nose's offset from the eyes' midpoint along the eye line, in
  interocular distances) and pitch (its offset across it, in eye-to-mouth distances); the `faces`
  training teacher reads pose this way, so the judge is another network than the teacher.
- lighting: the face's brightness gradient: a plane a + b x + c y fitted to the luminance inside the
  face box (x, y in [-1, 1] across it); the features are b / a and c / a, the light's direction and
  strength relative to the face's own brightness (so skin tone alone does not read as lighting).
- background: the frame at 16x16 (area averages) with the cells near the face set to NaN (the face box
  grown BACKGROUND_MARGIN times about its centre, and everything below it: neck and shoulders); the
  distance compares the cells that are background in both frames.

Frames without a face have NaN features, which leakage_matrix leaves out and counts. Limits: hair and
clothes outside the grown box read as background; landmarks on profile views are coarse.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from stylevid.data.faces import largest_faces
from stylevid.metrics.face_embedders import FaceEmbedder, mtcnn_sha256
from stylevid.metrics.facemesh import MIN_SCORE, FaceMesh, crop_rois, load_facemesh
from stylevid.metrics.leakage import rms_distance
from stylevid.video import from_uint8, to_uint8

BACKGROUND_GRID = 16
BACKGROUND_MARGIN = 1.6
# ITU-R BT.709 luma weights, applied to the sRGB values: a relative brightness, good for a gradient.
LUMA = torch.tensor([0.2126, 0.7152, 0.0722])
POSE_READINGS = ("facemesh", "points")


def pose_features(points: np.ndarray) -> np.ndarray:
    """[3] roll (radians), yaw and pitch (relative offsets) from MTCNN's landmarks [5, 2] (module doc)."""
    return pose_from_points(torch.from_numpy(np.asarray(points, np.float64))[None])[0].numpy()


def pose_from_points(points: torch.Tensor) -> torch.Tensor:
    """pose_features of landmarks [N, 5, 2] (eyes, nose, mouth corners), batched, differentiable: [N, 3]."""
    left_eye, right_eye, nose, mouth_left, mouth_right = points.unbind(dim=1)
    eyes = right_eye - left_eye
    distance = eyes.norm(dim=1, keepdim=True)
    along = eyes / distance
    across = torch.stack([-along[:, 1], along[:, 0]], dim=1)  # image y points down: across points down
    middle = (left_eye + right_eye) / 2
    mouth = (mouth_left + mouth_right) / 2
    offset = nose - middle
    height = ((mouth - middle) * across).sum(dim=1)
    roll = torch.atan2(eyes[:, 1], eyes[:, 0])
    yaw = (offset * along).sum(dim=1) / distance[:, 0]
    pitch = (offset * across).sum(dim=1) / height
    return torch.stack([roll, yaw, pitch], dim=1)


def face_distance(factor: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distances [N] of face features [N, D]: 1 - cos for identity (unit vectors), else RMS; NaN stays NaN."""
    if factor == "identity":
        # Unmeasured rows are zeroed before the product, so their NaN sends no NaN gradient back.
        valid = ~(a.isnan().any(dim=1) | b.isnan().any(dim=1))
        a, b = (torch.where(valid[:, None], x, torch.zeros_like(x)) for x in (a, b))
        distance = 1 - (a * b).sum(dim=1)
        return torch.where(valid, distance, torch.full_like(distance, float("nan")))
    return rms_distance(a, b)


def lighting_features(frame: torch.Tensor, box: np.ndarray) -> np.ndarray:
    """[2] b / a and c / a of the plane a + b x + c y fitted to the luminance of frame [3, H, W] in box."""
    height, width = frame.shape[-2:]
    x0, y0, x1, y1 = np.round(box).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return np.full(2, np.nan)
    luma = torch.einsum("c,chw->hw", LUMA.double(), (frame[:, y0:y1, x0:x1].double().cpu() + 1) / 2).numpy()
    ys, xs = np.meshgrid(np.linspace(-1, 1, y1 - y0), np.linspace(-1, 1, x1 - x0), indexing="ij")
    design = np.stack([np.ones(luma.size), xs.ravel(), ys.ravel()], axis=1)
    (a, b, c), *_ = np.linalg.lstsq(design, luma.ravel(), rcond=None)
    return np.array([b / a, c / a]) if a > 1e-3 else np.full(2, np.nan)


def background_features(frame: torch.Tensor, box: np.ndarray) -> torch.Tensor:
    """[3 * 16 * 16]: the frame [3, H, W] at 16x16 with cells near and below the face NaN (module doc)."""
    small = F.adaptive_avg_pool2d(frame[None].float().cpu(), BACKGROUND_GRID)[0]
    return small.masked_fill(near_face(box, *frame.shape[-2:])[None], math.nan).flatten()


def near_face(box, height: int, width: int) -> torch.Tensor:
    """bool [16, 16]: the background cells of a frame that the grown face box or the body below it covers."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w, half_h = BACKGROUND_MARGIN * (box[2] - box[0]) / 2, BACKGROUND_MARGIN * (box[3] - box[1]) / 2
    cells = (torch.arange(BACKGROUND_GRID, dtype=torch.float64) + 0.5) / BACKGROUND_GRID
    x, y = cells[None, :] * width, cells[:, None] * height
    return ((x - cx).abs() <= half_w) & (y >= cy - half_h)  # the face, and everything below it


class FaceReadout:
    """Readout of leakage_matrix for faces: identity, pose, lighting, background as in the module doc.

    `pose` is "facemesh" or "points"; `facemesh` a loaded FaceMesh (loaded here when None and needed).
    """

    def __init__(self, embedder: FaceEmbedder, pose: str = "facemesh", facemesh: FaceMesh | None = None):
        if pose not in POSE_READINGS:
            raise ValueError(f"pose={pose!r} is not a pose reading; choose one of {POSE_READINGS}")
        self.embedder = embedder
        if pose == "facemesh" and facemesh is None:
            facemesh = load_facemesh()
        self.facemesh = facemesh if pose == "facemesh" else None
        self.dim = embedder(torch.zeros(1, 3, embedder.size, embedder.size)).shape[1]
        mesh_sha = self.facemesh.weights_sha256 if self.facemesh is not None else {}
        self.weights_sha256 = {**embedder.weights_sha256, **mtcnn_sha256(), **mesh_sha}

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        n = len(frames)
        features = {
            "identity": torch.full((n, self.dim), math.nan),
            "pose": torch.full((n, 3), math.nan, dtype=torch.float64),
            "lighting": torch.full((n, 2), math.nan, dtype=torch.float64),
            "background": torch.full((n, 3 * BACKGROUND_GRID**2), math.nan),
        }
        images = to_uint8(frames.detach().cpu())
        faces, boxes, with_face = [], [], []
        for i, found in enumerate(largest_faces(images)):
            if found is None:
                continue
            box, points = found
            if self.facemesh is None:
                features["pose"][i] = torch.from_numpy(pose_features(points))
            features["lighting"][i] = torch.from_numpy(lighting_features(frames[i], box))
            features["background"][i] = background_features(frames[i], box)
            faces.append(self.embedder.crop(images[i], box, points))  # aligned as its network expects
            boxes.append(box)
            with_face.append(i)
        if faces:
            crops = from_uint8(np.stack(faces))
            features["identity"][with_face] = self.embedder(crops).float().cpu()
            if self.facemesh is not None:
                features["pose"][with_face] = self._mesh_pose(images[with_face], np.stack(boxes))
        return {name: value.float() for name, value in features.items()}

    def _mesh_pose(self, images: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
        """FaceMesh's yaw, pitch, roll [K, 3] (float64) of uint8 images [K, H, W, 3] at face boxes [K, 4]."""
        crops = torch.cat([crop_rois(image, box[None]) for image, box in zip(images, boxes, strict=True)])
        angles, score = self.facemesh.pose(crops.to(self.facemesh.reference.device))
        angles = angles.double().cpu()
        return angles.masked_fill((score.cpu() < MIN_SCORE)[:, None], math.nan)

    def distance(self, factor: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return face_distance(factor, a, b)
