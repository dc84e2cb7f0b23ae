"""Factor probes: training writes a loadable file; the shipped probes read fresh synthetic frames well."""

import numpy as np
import pytest
import torch

from stylevid import checkpoint, cli
from stylevid.config import FACTORS
from stylevid.data import synthetic
from stylevid.metrics import probes
from stylevid.metrics.leakage import ProbeReadout, leakage_matrix
from stylevid.metrics.weights import file_sha256


def test_r_squared_closed_forms():
    rng = np.random.default_rng(0)
    actual = rng.normal(size=(50, 3))
    np.testing.assert_allclose(probes.r_squared(actual, actual), 1)
    np.testing.assert_allclose(
        probes.r_squared(np.broadcast_to(actual.mean(0), actual.shape), actual), 0, atol=1e-12
    )
    noisy = actual + rng.normal(size=actual.shape)
    expected = [1 - np.mean((noisy[:, i] - actual[:, i]) ** 2) / np.var(actual[:, i]) for i in range(3)]
    np.testing.assert_allclose(probes.r_squared(noisy, actual), expected)


def test_outputs_per_factor_at_any_resolution():
    probe = probes.FactorProbe()
    for size in (32, 64, 128):
        out = probe(torch.zeros(2, 3, size, size))
        assert {f: v.shape for f, v in out.items()} == {
            f: (2, len(n)) for f, n in synthetic.FACTOR_NAMES.items()
        }
    with pytest.raises(ValueError, match=r"\[2, 1, 64, 64\] must be \[N, 3, H, W\]"):
        probe(torch.zeros(2, 1, 64, 64))


def test_starts_point_at_each_factors_outputs():
    """STARTS (used by the imitation term and the R² summary) agrees with the probe's own split of its
    flat output: with every output its own index, each factor's columns read STARTS[f], STARTS[f] + 1, ..."""
    probe = probes.FactorProbe()
    last = probe.head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.arange(probes.OUTPUTS, dtype=torch.float32))
    out = probe(torch.zeros(1, 3, 64, 64))
    for factor, columns in out.items():
        expected = torch.arange(probes.STARTS[factor], probes.STARTS[factor] + probes.SIZES[factor])
        assert torch.equal(columns[0], expected.float()), factor


def test_mirror_map_matches_the_renderer():
    """A left-right flipped frame is the frame of the mirrored targets (the renderer's own mirror rule)."""
    factors = synthetic.sample_factors(3, frames=1)
    scale, offset = probes._mirror_map()
    target = torch.from_numpy(probes.targets(factors))
    mirrored = (scale * target + offset).numpy()
    split = np.split(mirrored, np.cumsum(list(probes.SIZES.values()))[:-1])
    parts = dict(zip(FACTORS, split, strict=True))
    frame = synthetic.render_frame(
        parts["identity"], parts["pose"], parts["lighting"], parts["background"], 32
    )
    flipped = synthetic.render_frame(
        factors.identity, factors.pose[0], factors.lighting[0], factors.background, 32
    )
    assert np.abs(frame.astype(int) - flipped[:, ::-1].astype(int)).max() <= 2


def test_training_writes_probes_that_load_back(tmp_path):
    out = tmp_path / "p.safetensors"
    with pytest.warns(UserWarning, match="no leakage floor: the probe reads no identity value"):
        scores = probes.train_probes(
            out, frames=64, validation=16, epochs=1, batch=16, workers=1, progress=False, floor_videos=2
        )
    assert set(scores["factors"]) == set(synthetic.FACTOR_NAMES)
    loaded = probes.load_probes(out)
    assert loaded.weights_sha256 == file_sha256(out)
    assert loaded.validation_r2 == {k: v for k, v in scores.items() if k != "floor"}
    assert loaded.floor is None and scores["floor"] is None
    with pytest.raises(ValueError, match="lower min_r2, or retrain it"):
        ProbeReadout(loaded)  # one epoch on 64 frames reads nothing well
    frames = torch.rand(3, 3, 64, 64) * 2 - 1
    values = loaded.values(frames)
    standard = loaded(frames)
    torch.testing.assert_close(values["pose"], standard["pose"] * loaded.std[20:23] + loaded.mean[20:23])


def test_missing_or_foreign_probe_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="stylevid train-probes --out"):
        probes.load_probes(tmp_path / "none.safetensors")
    other = tmp_path / "other.safetensors"
    names = {**synthetic.FACTOR_NAMES, "pose": ["yaw", "pitch"]}
    checkpoint.save_checkpoint(other, {"probe": probes.FactorProbe()}, {"probe": {"factor_names": names}})
    with pytest.raises(checkpoint.CheckpointError, match="retrain them"):
        probes.load_probes(other)


def test_train_probes_writes_to_the_working_folder_unless_asked_to_replace_the_shipped_file(
    tmp_path, monkeypatch
):
    written = []

    def train(out, *settings, **options):
        assert out != probes.SHIPPED, "the default replaces the shipped probes"
        out.write_bytes(b"probes")
        written.append(out)
        return {"factors": {}, "floor": None}

    monkeypatch.setattr(probes, "train_probes", train)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train-probes"]) == 0
    assert written == [probes.DEFAULT_OUT] and not probes.DEFAULT_OUT.is_absolute()
    assert (tmp_path / probes.DEFAULT_OUT).read_bytes() == b"probes"
    assert cli.parser().parse_args(["train-probes", "--into-package"]).out == probes.SHIPPED
    assert cli.parser().parse_args(["train-probes", "--out", "p.safetensors"]).out.name == "p.safetensors"
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["train-probes", "--out", "p.safetensors", "--into-package"])


def test_shipped_probes_read_fresh_frames():
    """R² on frames from a seed neither training nor validation used: an independent check of the file."""
    probe = probes.load_probes()
    frames, values = probes.render_frames(96, seed=987, workers=1, progress=False)
    with torch.no_grad():
        predicted = torch.cat(list(probe.values(probes._as_input(frames)).values()), 1).numpy()
    r2 = probes.r_squared(predicted, values)
    offsets = np.cumsum([0, *probes.SIZES.values()])
    per_factor = {f: r2[offsets[i] : offsets[i + 1]].mean() for i, f in enumerate(FACTORS)}
    assert per_factor["pose"] > 0.85 and per_factor["lighting"] > 0.8, per_factor
    assert per_factor["background"] > 0.5 and per_factor["identity"] > 0.35, per_factor


def _renderer_leakage(generator):
    return leakage_matrix(generator, ProbeReadout(), videos=12, frames=2, step=10, batch=12, progress=False)


def test_the_renderer_itself_measures_near_the_stored_floor():
    result = _renderer_leakage(probes.GroundTruthGenerator())
    share = np.array(result["share"])
    assert (np.diag(share) > share.max(axis=1, initial=0, where=~np.eye(4, dtype=bool))).all(), share
    assert result["raw_leakage"] < 0.4, share
    assert result["raw_leakage"] == pytest.approx(probes.load_probes().floor["raw_leakage"], abs=0.1)


class CrossedCodes(probes.TruthCodes):
    """Each latent drives another factor: identity <-> background, pose <-> lighting."""

    CROSSED = {"identity": "background", "background": "identity", "pose": "lighting", "lighting": "pose"}

    def __getitem__(self, index):
        return CrossedCodes(self.videos[index])

    def with_factor(self, factor, source):
        return CrossedCodes(super().with_factor(self.CROSSED[factor], source).videos)


class CrossedGenerator(probes.GroundTruthGenerator):
    def sample(self, n, seed=0, frames=256):
        return CrossedCodes(super().sample(n, seed, frames).videos)


def test_a_renderer_with_crossed_latents_leaks():
    result = _renderer_leakage(CrossedGenerator())
    share = np.array(result["share"])
    crossed = [share[0, 3], share[1, 2], share[2, 1], share[3, 0]]
    assert min(crossed) > np.diag(share).max(), share
    assert result["raw_leakage"] > 0.8, share
