"""The public API end to end: chunked rendering, checkpoint round trip and refusals, the CLI."""

import json
import warnings

import pytest
import safetensors.torch
import torch

import stylevid
from stylevid import checkpoint
from stylevid.checkpoint import CheckpointError
from stylevid.cli import main
from stylevid.options import UsageError


def test_chunked_render_equals_single_pass(video_generator):
    codes = video_generator.sample(2, seed=4, frames=40)
    single = video_generator.render(codes, 37, chunk=37)
    chunks = list(video_generator.frames(codes, 37, chunk=5))
    assert [c.shape[1] for c in chunks] == [5] * 7 + [2]
    # Same chunking: the same bits. Other chunkings: float32 rounding only (BLAS sums in an
    # order that depends on the batch size), far below one 8-bit level (0.0078).
    assert torch.equal(torch.cat(chunks, dim=1), video_generator.render(codes, 37, chunk=5))
    for chunk in (1, 5, 16):
        torch.testing.assert_close(video_generator.render(codes, 37, chunk=chunk), single, atol=1e-5, rtol=0)


def test_any_frame_rate_by_fractional_times(video_generator):
    codes = video_generator.sample(1, seed=0, frames=10)
    at_25 = video_generator.render(codes, torch.arange(0, 8, 1.0))
    at_50 = video_generator.render(codes, torch.arange(0, 8, 0.5))
    torch.testing.assert_close(at_50[:, ::2], at_25)


def test_times_the_codes_do_not_cover_are_refused_before_any_frame(video_generator):
    short = video_generator.sample(2, seed=0, frames=20)
    yielded, refusal = [], r"times span \[0, 199\] .*covers \[0, \d+\] frames; .*frames >= 200"
    with pytest.raises(ValueError, match=refusal):
        for chunk in video_generator.frames(short, 200, chunk=4):
            yielded.append(chunk)
    assert yielded == []
    with pytest.raises(ValueError, match="frames >= 200"):
        video_generator.render(short, 200)
    with pytest.raises(ValueError, match=r"span \[-1, 2\] .*times start at 0"):
        video_generator.render(short, torch.tensor([-1.0, 2.0]))
    # What the message promises: codes sampled with that many frames render them all.
    assert video_generator.render(video_generator.sample(2, seed=0, frames=200), 200).shape[1] == 200


def test_frozen_trajectories_are_checked_at_their_frozen_time(video_generator):
    short = video_generator.sample(1, seed=0, frames=20)
    still = short.freeze("pose", t=0.0).freeze("lighting", t=5.0)
    assert video_generator.render(still, 200).shape[1] == 200  # no motion: any length
    with pytest.raises(ValueError, match=r"pose times span \[500, 500\] \(frozen.*frames >= 501"):
        video_generator.render(short.freeze("pose", t=500.0), 8)


def test_checkpoint_round_trip_is_bit_exact(video_generator, tmp_path):
    path = video_generator.save(tmp_path / "g.safetensors", metadata={"note": "tiny"})
    loaded = stylevid.load(path)
    original, restored = video_generator.generator.state_dict(), loaded.generator.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    codes = video_generator.sample(2, seed=1, frames=6)
    assert torch.equal(loaded.render(loaded.sample(2, seed=1, frames=6), 6), video_generator.render(codes, 6))
    assert loaded.metadata["note"] == "tiny" and loaded.model_config == video_generator.model_config


def test_foreign_and_broken_files_are_refused(video_generator, tmp_path):
    pickle_path = tmp_path / "network-snapshot.pkl"
    torch.save({"G": 1}, pickle_path)
    with pytest.raises(CheckpointError, match="pickle"):
        stylevid.load(pickle_path)
    foreign = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a stylevid checkpoint"):
        stylevid.load(foreign)
    good = video_generator.save(tmp_path / "good.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        stylevid.load(cut)


def test_a_config_that_does_not_match_the_weights_is_named(video_generator, tmp_path):
    path = video_generator.save(tmp_path / "g.safetensors")
    tensors = safetensors.torch.load_file(path)
    with safetensors.safe_open(path, "pt") as f:
        header = f.metadata()
    config = json.loads(header["config"])
    config["model"]["generator"]["w_dim"] = 48
    config["model"]["generator"]["channel_max"] = 16
    header["config"] = json.dumps(config)
    bad = tmp_path / "bad.safetensors"
    safetensors.torch.save_file(tensors, bad, metadata=header)
    with pytest.raises(CheckpointError, match="shape"):
        stylevid.load(bad)


def test_generate_command_writes_one_video_per_seed(video_generator, tmp_path):
    network = video_generator.save(tmp_path / "g.safetensors")
    out = tmp_path / "videos"
    args = ["generate", "--network", str(network), "--seeds", "0-2", "--frames", "6", "--out", str(out)]
    assert main([*args, "--format", "gif", "--grid", "--chunk", "4"]) == 0
    for seed in range(3):
        video = stylevid.read_video(out / f"seed{seed:04d}.gif")
        assert video.shape == (6, 3, 16, 16)
    expect = video_generator.render(video_generator.sample(1, seed=1, frames=6), 6)[0]
    assert (stylevid.read_video(out / "seed0001.gif") - expect).abs().mean() < 0.05
    assert (out / "grid.gif").exists()


def test_edit_command_swaps_freezes_and_interpolates(video_generator, tmp_path):
    network = video_generator.save(tmp_path / "g.safetensors")
    out = tmp_path / "edits"
    args = ["edit", "--network", str(network), "--frames", "4", "--out", str(out), "--format", "png"]
    assert (
        main(
            [
                *args,
                "--swap",
                "identity:0,3",
                "--freeze",
                "pose:1",
                "--interp",
                "background:0,3",
                "--steps",
                "3",
            ]
        )
        == 0
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == ["freeze-pose-1.png", "interp-background-0-3.png", "swap-identity-0-3.png"]
    with pytest.raises(UsageError, match="needs exactly two seeds"):
        main([*args, "--swap", "identity:0"])


def test_a_checkpoint_without_the_ema_generator_warns_and_says_which_it_used(video_generator, tmp_path):
    config = {"model": video_generator.model_config.to_dict()}
    path = checkpoint.save_checkpoint(tmp_path / "g.safetensors", {"G": video_generator.generator}, config)
    with pytest.warns(UserWarning, match=r"g\.safetensors has no 'G_ema'.*'G'"):
        loaded = stylevid.load(path)
    assert loaded.weights == "G"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stylevid.load(video_generator.save(tmp_path / "ema.safetensors")).weights == "G_ema"


def test_the_builtin_model_loads_by_name_and_renders():
    import json

    from stylevid import builtin

    gen = stylevid.load("builtin:synth64")
    assert gen.resolution == 64 and gen.generator.config.face3d and set(gen.controls) >= {"yaw", "azimuth"}
    video = gen.render(gen.sample(2, seed=0, frames=4), 4)
    assert video.shape == (2, 4, 3, 64, 64) and torch.isfinite(video).all()
    info = json.loads(builtin.resolve("builtin:synth64").with_suffix(".json").read_text())
    scores = info["leakage"]  # the shipped scores: the normalised leakage, and the raw one named so
    assert scores["leakage"] == pytest.approx(
        (scores["raw_leakage"] - scores["floor"]) / (0.75 - scores["floor"])
    )
    assert info["frame_fd16"] > 0
    with pytest.raises(ValueError, match="builtin:nope.*builtin:synth64"):
        stylevid.load("builtin:nope")


def test_commands_take_the_builtin_model(tmp_path):
    from stylevid.cli import main

    assert (
        main(
            [
                "generate",
                "--network",
                "builtin:synth64",
                "--seeds",
                "0",
                "--frames",
                "4",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert (tmp_path / "seed0000.mp4").stat().st_size > 0
