"""The value prior: the face layer's pose and light values held to the synthetic renderer's distribution."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats
from tiny import ClipsInMemory, tiny_face_training

from stylevid.data.synthetic.factors import MOTION
from stylevid.training.config import Disentangle, LossWeights
from stylevid.training.trainer import Trainer
from stylevid.training.value_prior import ValuePrior, data_range, renderer_quantiles, wasserstein_spreads


def test_distance_closed_forms():
    q = torch.linspace(-1, 1, 101)
    variance = float(q.var())
    assert wasserstein_spreads(q[torch.randperm(101)], q) == 0  # order does not matter
    shifted = float(wasserstein_spreads(q + 0.3, q))
    assert shifted == pytest.approx(0.09 / variance, rel=1e-5)  # W2² of a shift is the shift squared
    # A scaling about the mean: W2² = (s - 1)² E[x²]
    scaled = float(wasserstein_spreads(q * 0.5, q))
    assert scaled == pytest.approx(0.25 * float(q.square().mean()) / variance, rel=1e-5)
    # Fewer samples than quantiles: the quantiles are read at the samples' ranks.
    uniform = torch.linspace(-1, 1, 1001)
    few = (torch.arange(50) + 0.5) / 50 * 2 - 1  # the 50 evenly spaced quantiles of U(-1, 1)
    assert wasserstein_spreads(few, uniform) < 1e-5
    with pytest.raises(ValueError, match="1-D"):
        wasserstein_spreads(q[None], q)


def test_distance_against_scipy_w1_bound():
    # scipy's 1-D Wasserstein-1 is a lower bound of W2 (Jensen): W1² <= W2².
    gen = np.random.default_rng(0)
    a, b = gen.normal(0, 1, 400), gen.normal(0.5, 2, 400)
    sorted_b = torch.tensor(np.sort(b), dtype=torch.float32)
    w2_squared = float(wasserstein_spreads(torch.tensor(a, dtype=torch.float32), sorted_b) * sorted_b.var())
    w1 = stats.wasserstein_distance(a, b)
    assert w1**2 <= w2_squared + 1e-6
    assert w2_squared == pytest.approx(np.mean((np.sort(a) - np.sort(b)) ** 2), rel=1e-4)


def test_renderer_quantiles_are_the_renderers_family():
    q = renderer_quantiles(count=256, videos=512)
    assert set(q) == {"yaw", "pitch", "roll", "azimuth", "elevation", "intensity", "ambient", "warmth"}
    for name, values in q.items():
        low, high = data_range(name)
        assert (values.diff() >= 0).all(), name  # quantiles rise
        assert low - 1e-3 <= values[0] and values[-1] <= high + 1e-3, name
        # Every path is a centre drawn uniformly in the range plus a swing about it: the values fill it.
        assert values[-1] - values[0] > 0.8 * (high - low), name
        assert float(values.mean()) == pytest.approx((low + high) / 2, abs=0.08 * (high - low)), name
    # Degrees: the renderer's yaw reaches 0.8 rad = 45.8 degrees.
    assert np.degrees(MOTION["yaw"][1]) == pytest.approx(data_range("yaw")[1])


def _face_training(**loss):
    return tiny_face_training(Disentangle(teacher="none"), **loss)


def test_only_the_renderers_light_has_a_prior():
    config = _face_training()
    sh = dataclasses.replace(config.model.generator, light="sh")
    with pytest.raises(ValueError, match="light='renderer'"):
        model = dataclasses.replace(config.model, generator=sh)
        dataclasses.replace(config, model=model, loss=LossWeights(value_prior=1.0))
    with pytest.raises(ValueError, match="light='renderer'"):
        ValuePrior("sh")
    with pytest.raises(ValueError, match="must be >= 0"):
        _face_training(value_prior=-1.0)


def test_the_term_moves_the_heads_to_the_data(tmp_path):
    trainer = Trainer(_face_training(value_prior=1.0), ClipsInMemory(), tmp_path / "run")
    rng = np.random.default_rng(0)
    first = float(trainer._value_prior_term(rng).detach())
    optimizer = torch.optim.Adam(trainer.G.parameters(), lr=0.01)
    synthesis = {n: p.detach().clone() for n, p in trainer.G.named_parameters() if "synthesis" in n}
    for _ in range(60):
        optimizer.zero_grad()
        trainer._value_prior_term(rng).backward()
        painting = [p for n, p in trainer.G.named_parameters() if n in synthesis]
        assert all(p.grad is None or not p.grad.any() for p in painting)
        optimizer.step()
    last = float(trainer._value_prior_term(rng).detach())
    assert last < 0.3 * first, (first, last)
    for name, p in trainer.G.named_parameters():
        if name in synthesis:
            assert torch.equal(p, synthesis[name]), name  # it reads the codes' values, not the frames
    # The heads' values now spread like the renderer's: yaw's standard deviation within 25% of the data's.
    codes = trainer.G.sample(128, seed=5, frames=64)
    with torch.no_grad():
        yaw = trainer.G.physical_values(codes, torch.arange(0, 64, 8).float())["yaw"]
    assert float(yaw.std()) == pytest.approx(float(renderer_quantiles()["yaw"].std()), rel=0.25)


def test_training_logs_the_term(tmp_path):
    trainer = Trainer(_face_training(value_prior=1.0), ClipsInMemory(), tmp_path / "run")
    trainer.step()
    logged = torch.stack(trainer.means["loss/value_prior"])
    assert logged.shape == (1,) and torch.isfinite(logged).all() and logged[0] > 0
    off = Trainer(_face_training(), ClipsInMemory(), tmp_path / "off")
    off.step()
    assert "loss/value_prior" not in off.means
