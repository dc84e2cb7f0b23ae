"""The imitation term (loss.imitate): the teacher's reading of a frame against the values drawn in it."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from tiny import ClipsInMemory, tiny_face_training

from stylevid.data import synthetic
from stylevid.metrics.probes import FACTORS, OUTPUTS, SIZES
from stylevid.networks.face3d import ANGLE_NAMES
from stylevid.training.config import Disentangle
from stylevid.training.imitate import Imitation
from stylevid.training.teachers import SyntheticTeacher
from stylevid.training.trainer import Trainer
from stylevid.video import from_uint8


class _FixedProbe:
    """A stand-in probe: standardised readings given by the test, with a known mean and std."""

    def __init__(self, readings):
        self.readings = readings
        self.mean = torch.linspace(-1, 1, OUTPUTS)
        self.std = torch.linspace(0.5, 2, OUTPUTS)

    def __call__(self, frames):
        return self.readings


def _stand_in(readings, columns):
    return dataclasses.make_dataclass("T", ["kind", "probe", "columns"])(
        "synthetic", _FixedProbe(readings), columns
    )


def test_the_term_is_the_mean_squared_standardised_difference():
    n = 4
    columns = {"pose": [0, 1], "lighting": [0, 3]}  # yaw, pitch; azimuth, ambient
    values = {"yaw": torch.full((n,), 30.0), "pitch": torch.zeros(n), "azimuth": torch.full((n,), -60.0)}
    values["ambient"] = torch.full((n,), 0.3)
    values["roll"] = torch.full((n,), 99.0)  # the teacher does not read it: not imitated
    offset = {f: sum(SIZES[g] for g in FACTORS[: FACTORS.index(f)]) for f in FACTORS}
    probe = _FixedProbe(None)
    exact = {f: torch.zeros(n, SIZES[f]) for f in FACTORS}
    for factor, name, column, radians in (
        ("pose", "yaw", 0, True),
        ("pose", "pitch", 1, True),
        ("lighting", "azimuth", 0, True),
        ("lighting", "ambient", 3, False),
    ):
        v = values[name] * (math.pi / 180 if radians else 1)
        index = offset[factor] + column
        exact[factor][:, column] = (v - probe.mean[index]) / probe.std[index]
    term = Imitation(_stand_in(exact, columns), "renderer")
    frames = torch.zeros(n, 3, 8, 8)
    assert torch.allclose(term(frames, values), torch.zeros(n), atol=1e-10)
    off = {f: r.clone() for f, r in exact.items()}
    off["lighting"][:, 3] += 2.0  # the ambient read 2 standard deviations high
    term.probe.readings = off
    assert torch.allclose(term(frames, values), torch.full((n,), 4.0 / 4))


def test_the_values_are_the_target_and_get_no_gradient():
    reading = {f: torch.zeros(3, SIZES[f], requires_grad=True) for f in FACTORS}
    term = Imitation(_stand_in(reading, {"pose": [0], "lighting": [2]}), "renderer")
    values = {"yaw": torch.randn(3, requires_grad=True), "intensity": torch.randn(3, requires_grad=True)}
    term(torch.zeros(3, 3, 8, 8), values).sum().backward()
    assert values["yaw"].grad is None and values["intensity"].grad is None
    assert reading["pose"].grad[:, 0].abs().sum() > 0 and reading["lighting"].grad[:, 2].abs().sum() > 0


def test_on_the_renderers_heads_the_true_values_fit_and_shuffled_ones_do_not():
    """An independent oracle: the renderer draws each head with known values, so the teacher's reading of
    its frames lies near them, and far from another head's."""
    videos = [synthetic.sample_factors(np.random.default_rng([31, i]), frames=1) for i in range(48)]
    frames = from_uint8(np.stack([synthetic.render_video(v, 64)[0] for v in videos]))
    names = [*synthetic.FACTOR_NAMES["pose"], *synthetic.FACTOR_NAMES["lighting"]]
    truth = np.stack([np.concatenate([v.pose[0], v.lighting[0]]) for v in videos])
    values = {
        name: torch.from_numpy(np.degrees(truth[:, i]) if name in ANGLE_NAMES else truth[:, i]).float()
        for i, name in enumerate(names)
    }
    term = Imitation(SyntheticTeacher(), "renderer")
    with torch.no_grad():
        true = float(term(frames, values).mean())
        shuffled = float(term(frames, {k: v.roll(1) for k, v in values.items()}).mean())
    assert true < 0.35 * shuffled, (true, shuffled)


def _face_training(**loss):
    return tiny_face_training(Disentangle(start_kimg=0.0, ramp_kimg=0.0), **loss)


def test_training_logs_the_term_and_it_reaches_the_generator(tmp_path):
    trainer = Trainer(_face_training(imitate=1.0), ClipsInMemory(), tmp_path / "run")
    codes, t = trainer._sample_fake(np.random.default_rng(0))
    codes = codes[trainer.process.rows(trainer.cfg.batch)]
    frames, parts = trainer.G(codes, t, layers=True)
    trainer._imitation_term(frames, parts["values"]).backward()
    grads = [p.grad for n, p in trainer.G.named_parameters() if "synthesis" in n]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)  # the frames are what it trains
    trainer.step()
    logged = torch.stack(trainer.stats["loss/imitate"])
    assert torch.isfinite(logged).all() and (logged > 0).all()


def test_the_term_is_refused_without_its_teacher_the_face_layer_or_the_renderers_light():
    config = _face_training(imitate=1.0)
    for pairs in (
        Disentangle(teacher="none"),
        Disentangle(teacher="faces"),
        Disentangle(keep=0, move=0, contrast=0),
    ):
        with pytest.raises(ValueError, match=r"loss.imitate=1.0 .* teacher="):
            dataclasses.replace(config, disentangle=pairs)
    no_face = dataclasses.replace(config.model.generator, face3d=False, shading=True, pose_warp=True)
    with pytest.raises(ValueError, match=r"loss.imitate=1.0 .* face3d=False"):
        dataclasses.replace(
            config,
            loss=dataclasses.replace(config.loss, value_prior=0.0),
            model=dataclasses.replace(config.model, generator=no_face),
        )
    with pytest.raises(ValueError, match="light='renderer'"):
        Imitation(SyntheticTeacher(), "sh")
    with pytest.raises(ValueError, match="loss.imitate=-1.0 must be >= 0"):
        _face_training(imitate=-1.0)
