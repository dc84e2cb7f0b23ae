"""Five-point face alignment: the similarity that puts a face's landmarks on ArcFace's 112x112 template.

Face networks of the ArcFace family (SFace among them) learn from faces warped so that the eyes, the
nose tip and the mouth corners land as near as they can on TEMPLATE: a rotation, one scale and a shift
fitted by least squares (Umeyama's closed form, stylevid.metrics.rigid, as OpenCV's
FaceRecognizerSF.alignCrop and insightface fit it), then the frame resampled bilinearly with black
outside it (cv2.warpAffine's INTER_LINEAR with a constant border). Pixel centres are at integer
coordinates, as in OpenCV.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stylevid.metrics.rigid import rigid_fit

SIZE = 112
# (x, y) in a 112x112 face of the left eye, right eye, nose tip, left and right mouth corner (image left
# and right, MTCNN's order): insightface's arcface_dst, which OpenCV's alignCrop uses too.
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)


def similarity_transform(points: np.ndarray, target: np.ndarray = TEMPLATE) -> np.ndarray:
    """float64 [2, 3] [sR | t]: the least-squares similarity taking points [K, 2] to target [K, 2]."""
    points, target = np.asarray(points, np.float64), np.asarray(target, np.float64)
    if points.shape != target.shape or points.shape[-1] != 2:
        raise ValueError(f"points {list(points.shape)} must be [K, 2] like the target {list(target.shape)}")
    if ((points - points.mean(0)) ** 2).sum(1).mean() < 1e-12:
        raise ValueError(f"the landmarks {points.tolist()} are one point: no face to align")
    scale, rotation, shift = rigid_fit(torch.from_numpy(target)[None], torch.from_numpy(points))
    return torch.cat([scale[0] * rotation[0], shift[0, :, None]], dim=1).numpy()


def warp_face(image: np.ndarray, matrix: np.ndarray, size: int = SIZE) -> np.ndarray:
    """uint8 [size, size, 3]: image uint8 [H, W, 3] seen through matrix [2, 3] (image -> face pixels)."""
    height, width = image.shape[:2]
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    ys, xs = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    source = np.stack([xs, ys, np.ones_like(xs)], -1) @ inverse.T  # [size, size, (x, y)] in image pixels
    # grid_sample's coordinates (align_corners=False): -1 and 1 are the outer edges of the border pixels.
    grid = torch.from_numpy((2 * source + 1) / [width, height] - 1).float()[None]
    pixels = torch.from_numpy(np.array(image, np.float32)).permute(2, 0, 1)[None]
    face = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return face[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def five_point_crop(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """uint8 [112, 112, 3]: the face of image uint8 [H, W, 3] with landmarks [5, 2] put on TEMPLATE."""
    return warp_face(image, similarity_transform(points))
