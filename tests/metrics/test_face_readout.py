"""Real-face measurements of the leakage readout: closed forms, and the real MTCNN on a photograph."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from test_face_embedders import astronaut, small_embedder
from test_facemesh import loaded_facemesh

from stylevid.data.faces import largest_faces
from stylevid.metrics.face_readout import FaceReadout, background_features, lighting_features, pose_features
from stylevid.video import to_uint8


def _rotate(points, angle):
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def test_pose_features_closed_form():
    # Eyes 2 apart on the x axis, the nose 0.3 right of their middle and 0.5 down, the mouth 1 down.
    points = np.array([[-1.0, 0.0], [1.0, 0.0], [0.3, 0.5], [-0.6, 1.0], [0.6, 1.0]])
    np.testing.assert_allclose(pose_features(points), [0.0, 0.15, 0.5], atol=1e-12)
    for angle in (0.3, -0.5):
        turned = _rotate(points, angle) * 7 + [40, 12]  # rotation, scale and shift of the whole face
        np.testing.assert_allclose(pose_features(turned), [angle, 0.15, 0.5], atol=1e-12)


def test_lighting_features_recover_a_plane():
    height, width = 40, 60
    box = np.array([10.0, 5.0, 50.0, 35.0])  # x0 y0 x1 y1
    ys, xs = np.meshgrid(np.linspace(-1, 1, 30), np.linspace(-1, 1, 40), indexing="ij")
    luma = 0.5 + 0.1 * xs - 0.05 * ys
    frame = torch.full((3, height, width), 0.3, dtype=torch.float64)
    frame[:, 5:35, 10:50] = torch.from_numpy(luma) * 2 - 1  # grey: luma equals each channel
    np.testing.assert_allclose(lighting_features(frame, box), [0.2, -0.1], atol=1e-9)


def test_background_cells_near_and_below_the_face_are_left_out():
    frame = torch.zeros(3, 64, 64)
    box = np.array([24.0, 16.0, 40.0, 32.0])
    cells = background_features(frame, box).reshape(3, 16, 16)
    hidden = torch.isnan(cells[0])
    assert hidden[6, 8] and hidden[15, 8]  # the face's centre, and below it
    assert not hidden[0, 0] and not hidden[8, 0] and not hidden[6, 15]
    frame[:, :8, :8] = 1  # the top-left corner: background
    assert torch.nansum((background_features(frame, box) - cells.flatten()).abs()) > 0


@pytest.fixture(scope="module")
def photo():
    return astronaut(256)


def _pose(frame):
    (found,) = largest_faces(to_uint8(frame[None]))
    assert found is not None, "MTCNN found no face in the astronaut photograph"
    return pose_features(found[1])


def test_mtcnn_pose_follows_a_rotated_photo(photo):
    image = Image.fromarray(((photo.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy())
    turned = torch.from_numpy(np.array(image.rotate(12, resample=Image.BICUBIC))).permute(2, 0, 1)
    roll = _pose(turned.float() / 127.5 - 1)[0] - _pose(photo)[0]
    # PIL turns counter-clockwise on screen; with y pointing down the eye line's angle drops by as much.
    assert roll == pytest.approx(-math.radians(12), abs=math.radians(3))


def test_mirroring_the_photo_negates_yaw_and_roll(photo):
    pose, mirrored = _pose(photo), _pose(photo.flip(-1))
    np.testing.assert_allclose(mirrored[:2], -pose[:2], atol=0.05)
    assert mirrored[2] == pytest.approx(pose[2], abs=0.05)


def face_readout(pose: str) -> FaceReadout:
    """The readout with either pose reading; FaceMesh's loaded once per process (skips when absent)."""
    return FaceReadout(small_embedder(), pose, loaded_facemesh() if pose == "facemesh" else None)


@pytest.mark.parametrize("pose", ["facemesh", "points"])
def test_readout_sees_a_new_background_and_not_a_new_face(photo, pose):
    readout = face_readout(pose)
    changed = photo.clone()
    changed[:, :40, :40] = -photo[:, :40, :40]  # the top-left corner is wall, not face
    base, other = readout(photo[None]), readout(changed[None])
    assert readout.distance("background", base["background"], other["background"]) > 0.05
    for factor in ("identity", "pose", "lighting"):
        assert readout.distance(factor, base[factor], other[factor]) < 1e-3, factor
    assert set(readout.weights_sha256) >= {"small-test-net", "mtcnn-pnet", "mtcnn-onet"}
    assert ("facemesh" in readout.weights_sha256) == (pose == "facemesh")


def test_facemesh_pose_of_the_mirrored_photo_negates_yaw_and_roll(photo):
    readout = face_readout("facemesh")
    pose, mirrored = readout(torch.stack([photo, photo.flip(-1)]))["pose"].numpy()
    np.testing.assert_allclose(mirrored[[0, 2]], -pose[[0, 2]], atol=math.radians(3))
    assert mirrored[1] == pytest.approx(pose[1], abs=math.radians(3))
    assert np.abs(pose).max() < math.radians(30)  # a near-frontal photograph


def test_pose_reading_must_be_known():
    with pytest.raises(ValueError, match="pose='mesh' is not a pose reading; choose one of"):
        FaceReadout(small_embedder(), "mesh")


@pytest.mark.parametrize("pose", ["facemesh", "points"])
def test_frames_without_a_face_read_nan(photo, pose):
    readout = face_readout(pose)
    blank = torch.zeros(1, 3, 96, 96)
    features = readout(torch.cat([blank, photo[None, :, :96, :96] * 0]))
    assert all(torch.isnan(value).all() for value in features.values())
