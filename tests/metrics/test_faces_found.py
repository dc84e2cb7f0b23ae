"""MTCNN's face share: a real face (the astronaut photo at 64²) is found, a flat frame is not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from stylevid.metrics.faces_found import face_share


def _frames(*images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_mtcnn_finds_an_upsampled_64px_face_and_none_in_a_flat_frame():
    face = np.asarray(Image.fromarray(data.astronaut()[:300, 90:390]).resize((64, 64), Image.Resampling.BOX))
    assert face_share(_frames(face, np.full_like(face, 128))) == 0.5
    # Upsampled in chunks of 64: a face in the second chunk counts as in the first.
    assert face_share(_frames(*[np.full_like(face, 128)] * 70, face)) == pytest.approx(1 / 71)


def test_bad_frames_are_named():
    with pytest.raises(ValueError, match=r"\[2, 64, 64\]"):
        face_share(torch.zeros(2, 64, 64))
