"""References as the encoder reads them: face crops as prepare makes them, clear errors, codes files."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import stylevid
from stylevid.checkpoint import CheckpointError
from stylevid.data.faces import DEFAULT_MARGIN, LIFT, face_detector, largest_faces
from stylevid.encoder import NoFaceError
from stylevid.encoder.align import align_images


def test_a_photo_is_cropped_as_prepare_frames_a_face():
    crop = align_images([data.astronaut()], 128)[0]
    image = ((crop.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    ((box, _),) = largest_faces(image[None])  # found again, independently, inside the crop
    face_side = max(box[2] - box[0], box[3] - box[1])
    assert abs(face_side - 128 / DEFAULT_MARGIN) < 0.12 * 128 / DEFAULT_MARGIN
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    assert abs(centre_x - 64) < 8
    assert abs(centre_y - (64 + LIFT * (box[3] - box[1]))) < 8  # the crop sits LIFT box-heights higher


def test_a_reference_without_a_face_is_refused_by_name(tmp_path):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    face_detector()
    with pytest.raises(NoFaceError, match="wall.png"):
        align_images([data.astronaut(), blank], 64)


@pytest.mark.parametrize("content", [b"", b"not an image at all"])
def test_a_corrupt_reference_is_refused_by_name(tmp_path, content):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(content)
    with pytest.raises(ValueError, match="broken.jpg"):
        align_images([broken], 64)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        align_images([tmp_path / "missing.jpg"], 64)


def test_codes_files_round_trip_and_edit_again(tmp_path, video_generator):
    codes = video_generator.sample(3, seed=1, frames=20)
    codes = codes.replace(pose=codes.pose.freeze(4.0))
    path = stylevid.save_codes(tmp_path / "codes.safetensors", codes, {"network": "tiny"})
    back = stylevid.load_codes(path)
    for a, b in ((codes.identity, back.identity), (codes.background, back.background)):
        assert torch.equal(a, b)
    for f in ("pose", "lighting"):
        x, y = getattr(codes, f), getattr(back, f)
        assert torch.equal(x.z, y.z) and torch.equal(x.anchors, y.anchors) and x.spacing == y.spacing
        assert torch.equal(x.psi, y.psi) and torch.equal(x.frozen_at.isnan(), y.frozen_at.isnan())
    torch.testing.assert_close(video_generator.render(back, 3), video_generator.render(codes, 3))
    swapped = back.swap("background", 0, 2)  # the Codes API edits them
    assert torch.equal(swapped.background[0], codes.background[2])
    with pytest.raises(CheckpointError, match="not a codes file"):
        video_generator.save(tmp_path / "g.safetensors")
        stylevid.load_codes(tmp_path / "g.safetensors")
