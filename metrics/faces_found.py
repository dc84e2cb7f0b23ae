"""How often a face detector that no synth64 loss reads (MTCNN) finds a face in frames: a realism score
that sees eyes, nose and mouth, which frame_fd16's 16x16 thumbnails cannot. Report it beside the data's
own share (both upsampled alike): a generator's faces are as findable as the data's at a ratio of 1.

(The ffs256 recipe's faces teacher reads MTCNN's landmarks, so for models trained with it this score is
no judge; see docs/metrics.md.)
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stylevid.data.faces import detect_faces, face_detector, one_thread

FACE_SIDE = 160  # MTCNN's smallest face is 20 px: 64² heads are upsampled before detection


def face_share(frames: torch.Tensor, side: int = FACE_SIDE) -> float:
    """The share of frames [N, 3, R, R] in [-1, 1] where MTCNN finds a face (probability >= 0.9), each
    upsampled bilinearly to side² first."""
    if frames.ndim != 4 or frames.shape[1] != 3 or not len(frames):
        raise ValueError(f"frames have shape {list(frames.shape)}; expected [N > 0, 3, H, W] in [-1, 1]")
    detector = face_detector()
    found = []
    with one_thread():
        for chunk in frames.split(64):  # upsampled in pieces: 1024 frames at 160² would be 300 MB
            big = F.interpolate(chunk.float(), size=side, mode="bilinear", align_corners=False)
            images = ((big.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
            found += [len(detect_faces(detector, image)[0]) > 0 for image in images]
    return float(np.mean(found))
