"""The factor teachers: frozen, not the evaluation probes, and the `faces` teacher reads real frames."""

import math

import pytest
import torch
import torch.nn.functional as F
from skimage import data
from tiny import tiny_training

from stylevid.config import FACTORS
from stylevid.metrics import probes
from stylevid.metrics.face_readout import pose_features
from stylevid.training import teachers
from stylevid.training.config import Disentangle
from stylevid.training.trainer import Trainer


def _photo(size: int = 128) -> torch.Tensor:
    """The astronaut photograph [3, size, size] in [-1, 1] (one real face)."""
    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1).float()[None] / 127.5 - 1
    return F.interpolate(image, size=size, mode="bilinear", antialias=True)[0]


def test_the_teacher_and_the_evaluation_probes_are_different_networks():
    teacher, judge = teachers.SyntheticTeacher(), probes.load_probes()
    assert teacher.weights_sha256["teacher"] != judge.weights_sha256
    assert teacher.probe.widths != judge.widths  # another shape ...
    teacher_weights = [p for p in teacher.probe.parameters()]
    judge_weights = [p for p in judge.parameters()]
    first = teacher.probe.trunk[0].weight, judge.trunk[0].weight
    assert first[0].shape != first[1].shape or not torch.equal(*first)
    assert len(teacher_weights) == len(judge_weights)
    assert teacher.probe.validation_r2  # ... trained on the renderer like the judge, with another seed


def test_no_gradient_reaches_the_teacher_and_training_leaves_it_unchanged(clips, tmp_path):
    trainer = Trainer(tiny_training(), clips, tmp_path)
    before = {k: v.clone() for k, v in trainer.teacher.state_dict().items()}
    for _ in range(3):
        trainer.step()
    assert trainer.stats["loss/keep"] and trainer.stats["loss/move"]
    assert all(p.grad is None and not p.requires_grad for p in trainer.teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in trainer.teacher.state_dict().items())
    assert not trainer.teacher.training
    assert not any(
        p is q for p in trainer.teacher.parameters() for q in trainer.opt_G.param_groups[0]["params"]
    )


def test_the_spread_is_a_distance_between_unrelated_frames():
    teacher = teachers.SyntheticTeacher()
    frames = torch.rand(8, 3, 64, 64) * 2 - 1
    spread = teachers.teacher_spread(teacher, frames)
    readings = teacher(frames)
    for f in FACTORS:  # frame i against frame i + 4, by hand
        expected = (readings[f] - readings[f].roll(4, 0)).square().mean(1).sqrt().mean()
        assert spread[f] == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="reads the same"):
        teachers.teacher_spread(teacher, frames[:1].expand(4, -1, -1, -1))


@pytest.fixture(scope="module")
def face_teacher():
    from stylevid.training.face_teacher import FaceTeacher

    return FaceTeacher()


def test_the_faces_teacher_reads_a_real_photo_with_gradients_and_leaves_faceless_frames_unmeasured(
    face_teacher,
):
    photo = _photo()
    frames = torch.stack([photo, photo.flip(-1), torch.zeros_like(photo)]).requires_grad_(True)
    readings = face_teacher(frames)
    for f in FACTORS:
        assert torch.isfinite(readings[f][:2]).any(dim=1).all(), f
        assert readings[f][2].isnan().all(), f"{f}: a frame without a face must read NaN, not a value"
    identity = readings["identity"]
    assert float((identity[0] * identity[1]).sum().detach()) > 0.5  # a mirrored face is still the same person
    roll, yaw = readings["pose"][:2, 0], readings["pose"][:2, 1]
    assert roll[0] * roll[1] < 0 and yaw[0] * yaw[1] < 0  # mirroring negates roll and yaw
    sum(r[:2].nansum() for r in readings.values()).backward()
    assert frames.grad[:2].abs().sum() > 0
    assert all(p.grad is None for p in face_teacher.parameters())


def test_the_faces_teacher_pose_agrees_with_mtcnns_landmarks(face_teacher):
    from stylevid.data.faces import largest_faces
    from stylevid.video import to_uint8

    photo = _photo()
    # Frames of a filmed photo: turned by a few degrees from frame to frame.
    angles = [-12.0, -6.0, 0.0, 6.0, 12.0]
    frames = torch.stack([_rotate(photo, a) for a in angles])
    taught = face_teacher(frames)["pose"][:, 0]
    detected = [pose_features(found[1])[0] for found in largest_faces(to_uint8(frames))]
    for ours, theirs in zip(taught.tolist(), detected, strict=True):
        assert ours == pytest.approx(theirs, abs=math.radians(3))
    assert (taught.diff() > 0).all() or (taught.diff() < 0).all()  # roll follows the turn


def _rotate(image: torch.Tensor, degrees: float) -> torch.Tensor:
    angle = math.radians(degrees)
    theta = torch.tensor([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0]])
    grid = F.affine_grid(theta[None], [1, *image.shape], align_corners=False)
    return F.grid_sample(image[None], grid, padding_mode="reflection", align_corners=False)[0]


class PhotoClips(torch.utils.data.Dataset):
    """Clips of a filmed photograph at 64²: the photo shifted a little from frame to frame."""

    def __init__(self, videos: int = 4, k: int = 3):
        self.photo, self.k, self.videos = _photo(96), k, videos

    def __len__(self):
        return self.videos

    def __getitem__(self, index):
        return self.item(index, 0)

    def item(self, index, epoch):
        frames = torch.stack([self.photo[:, 8 + i + index : 72 + i + index, 16:80] for i in range(self.k)])
        return {"frames": frames, "times": torch.arange(self.k).float(), "video": index}


def test_training_runs_with_the_faces_teacher_on_real_frames(tmp_path):
    from tiny import tiny_config

    cfg = tiny_training(
        model=tiny_config(64), disentangle=Disentangle(teacher="faces", start_kimg=0.0, ramp_kimg=0.0)
    )
    trainer = Trainer(cfg, PhotoClips(), tmp_path)
    assert all(math.isfinite(v) and v > 0 for v in trainer.spread.values())
    trainer.step()  # an untrained G draws no face: the terms are unmeasured, and finite
    for term in ("keep", "move", "contrast"):
        assert torch.isfinite(torch.stack(trainer.stats[f"loss/{term}"])).all()


def test_configs_of_runs_from_before_the_teachers_still_load():
    from stylevid.training.config import TrainConfig

    old = TrainConfig().to_dict()
    del old["disentangle"]
    old["loss"] = {"r1_gamma": 2.0, "identity": 1.0, "recovery": 1.0, "swap": 1.0}  # the learned head's
    cfg = TrainConfig.from_dict(old)
    assert cfg.loss.r1_gamma == 2.0 and cfg.disentangle.teacher == "none" and not cfg.disentangle.active
