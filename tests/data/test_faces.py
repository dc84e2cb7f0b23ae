"""Face detection and crop: the real MTCNN on a photograph at several sizes, and crops by their geometry."""

import numpy as np
import pytest
from PIL import Image
from skimage import data

from stylevid.data.faces import DETECT_SIDE, crop_face, detect_faces, face_detector, face_square


def _resized(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def detector():
    return face_detector()


def test_boxes_and_landmarks_come_back_in_the_frames_own_pixels(detector):
    photo = data.astronaut()  # 512², one face
    small = _resized(photo, 256, 256)  # under DETECT_SIDE: searched as it is
    (box,), (points,) = detect_faces(detector, small)
    for side in (512, 2 * DETECT_SIDE + 24):  # searched on copies downscaled to DETECT_SIDE
        boxes, landmarks = detect_faces(detector, _resized(photo, side, side))
        scale = side / 256
        assert boxes.shape == (1, 4) and landmarks.shape == (1, 5, 2)
        # The same face, up to MTCNN's jitter between sizes: a few percent of the box.
        tolerance = 0.06 * (box[2] - box[0]) * scale
        np.testing.assert_allclose(boxes[0], box * scale, atol=tolerance)
        np.testing.assert_allclose(landmarks[0], points * scale, atol=tolerance)


def test_faces_come_largest_first_and_blank_or_tiny_frames_have_none(detector):
    photo = data.astronaut()
    canvas = np.full((300, 460, 3), 128, np.uint8)
    canvas[:, :300] = _resized(photo, 300, 300)
    canvas[:150, 300:450] = _resized(photo, 150, 150)
    boxes, landmarks = detect_faces(detector, canvas)
    assert len(boxes) == 2 and landmarks.shape == (2, 5, 2)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert areas[0] > 3 * areas[1] and boxes[0, 2] < 300 < boxes[1, 0]
    for frame in (np.zeros((120, 160, 3), np.uint8), photo[:12, :12]):
        boxes, landmarks = detect_faces(detector, frame)
        assert boxes.shape == (0, 4) and landmarks.shape == (0, 5, 2)


def test_face_square_is_margin_times_the_longer_side_lifted_by_the_height():
    boxes = np.array([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 30.0, 10.0]])  # tall, wide
    np.testing.assert_allclose(face_square(boxes, 1.5, 0.1), [[30, 52, 120], [15, 4, 45]])
    np.testing.assert_allclose(face_square(boxes[0], 1.3, 0.0), [30, 60, 104])


def test_crop_outside_the_frame_is_filled_by_reflection():
    frame = np.zeros((40, 40, 3), np.uint8)
    frame[:, :10] = 200  # a bright band along the left edge
    crop = crop_face(frame, cx=0, cy=20, side=40, resolution=40)
    # Left of the edge the band is mirrored: bright on both sides of the centre column.
    assert crop[:, 12:28].mean() > 190 and crop[:, :8].mean() < 10 and crop[:, 32:].mean() < 10
