"""Checks before the work, one exit status per kind of failure, output files, and progress on stderr."""

import io
import sys

import pytest
import torch
from PIL import Image

import stylevid
from stylevid import cli


def _never_loaded(*args, **kwargs):
    raise AssertionError("the model was loaded: the check came after the work started")


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "face.png"
    Image.new("RGB", (64, 64), (120, 90, 80)).save(path)
    return path


def _usage(tmp_path, photo):
    out = str(tmp_path / "out")
    return {
        "animate to an unwritable suffix": [
            "animate",
            "--refs",
            str(photo),
            "--out",
            str(tmp_path / "a.avi"),
        ],
        "invert preview to an unwritable suffix": [
            *("invert", "--images", str(photo), "--out", str(tmp_path / "c.safetensors")),
            *("--preview", str(tmp_path / "p.avi")),
        ],
        "freeze a factor that does not move": ["edit", "--network", "builtin:synth64", "--out", out]
        + ["--freeze", "identity:0"],
        "generate to an unwritable suffix": ["generate", "--network", "builtin:synth64", "--seeds", "0"]
        + ["--out", str(tmp_path / "v.avi")],
        "one file for several videos": ["generate", "--network", "builtin:synth64", "--seeds", "0-2"]
        + ["--out", str(tmp_path / "v.mp4")],
        "an odd batch with teachers": ["train", "--data", str(tmp_path / "none.zip"), "--batch", "3"]
        + ["--out", out],
    }


@pytest.mark.parametrize(
    "case",
    [
        "animate to an unwritable suffix",
        "invert preview to an unwritable suffix",
        "freeze a factor that does not move",
        "generate to an unwritable suffix",
        "one file for several videos",
        "an odd batch with teachers",
    ],
)
def test_usage_errors_exit_2_before_any_work(case, tmp_path, photo, monkeypatch, capsys):
    monkeypatch.setattr(stylevid, "load", _never_loaded)
    argv = _usage(tmp_path, photo)[case]
    try:
        status = cli.console(argv)
    except SystemExit as stop:  # argparse's own refusals
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err


def test_advice_names_only_options_that_exist(tmp_path, photo, capsys):
    assert cli.console(_usage(tmp_path, photo)["an odd batch with teachers"]) == 2
    err = capsys.readouterr().err
    assert "disentangle.teacher" not in err and "--batch 4" in err


def test_out_with_a_video_suffix_writes_that_file(tmp_path):
    out = tmp_path / "video.mp4"
    argv = ["generate", "--network", "builtin:synth64", "--seeds", "3", "--frames", "2", "--out", str(out)]
    assert cli.main([*argv, "--quiet"]) == 0
    assert out.is_file()
    assert stylevid.read_video(out).shape[0] == 2


def test_a_training_state_file_as_network_is_named(tmp_path, capsys):
    state = tmp_path / "snapshot-000004-state.safetensors"
    state.write_bytes(b"{}")
    argv = ["generate", "--network", str(state), "--seeds", "0", "--out", str(tmp_path / "v")]
    assert cli.console(argv) == 1
    err = capsys.readouterr().err
    assert "training state" in err and "snapshot-000004.safetensors" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_and_not_with_quiet(tmp_path, photo, monkeypatch):
    argv = ["invert", "--images", str(photo), "--align", "none", "--out", str(tmp_path / "c.safetensors")]
    for quiet in (False, True):
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        assert cli.main(argv + ["--quiet"] * quiet) == 0
        assert ("fit pose" in terminal.getvalue()) is not quiet, terminal.getvalue()


def test_no_progress_where_stderr_is_not_a_terminal(tmp_path, photo, monkeypatch):
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    argv = [
        "generate",
        "--network",
        "builtin:synth64",
        "--seeds",
        "0-1",
        "--frames",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert cli.main(argv) == 0
    assert "videos" not in plain.getvalue()


def _recorded(monkeypatch, target: str) -> dict:
    """Replace the function `target` (module:name) by one that records its keyword arguments."""
    seen = {}
    module, name = target.split(":")

    def record(*args, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop before any work (console's exit status 130)

    monkeypatch.setattr(f"{module}.{name}", record)
    return seen


QUIET = {
    "train": (["train", "--data", "d"], "stylevid.training.run:run_training"),
    "train-encoder": (
        ["train-encoder", "--network", "n"],
        "stylevid.training.encoder_run:run_encoder_training",
    ),
    "demo": (["demo"], "stylevid.training.demo:run_demo"),
    "synth": (["synth", "--out", "s.zip", "--videos", "1"], "stylevid.data.synthetic.cli:synthesize"),
    "prepare": (["prepare", "--source", "v", "--dest", "d"], "stylevid.data.prepare.cli:prepare"),
    "train-probes": (["train-probes", "--out", "p.safetensors"], "stylevid.metrics.probes:train_probes"),
}


@pytest.mark.parametrize("command", QUIET)
def test_quiet_turns_off_the_progress_bars_of_every_long_command(command, monkeypatch):
    argv, target = QUIET[command]
    monkeypatch.setattr(sys, "stderr", _Terminal())
    for quiet in (False, True):
        seen = _recorded(monkeypatch, target)
        assert cli.console(argv + ["--quiet"] * quiet) == 130
        assert seen["progress"] is not quiet


def test_every_command_but_ops_takes_quiet_and_threads():
    jobs = next(a for a in cli.parser()._actions if a.dest == "job").choices
    for name, command in jobs.items():
        given = set(command._option_string_actions)
        assert name == "ops" or {"--quiet", "--threads"} <= given, name


def test_an_encoders_training_state_file_is_named(tmp_path):
    state = tmp_path / "encoder-000100-state.safetensors"
    state.write_bytes(b"{}")
    with pytest.raises(
        ValueError, match="training state file .*train-encoder --resume.*encoder-000100.safetensors"
    ):
        stylevid.load_encoder(state)


@pytest.mark.parametrize("source", ["--images", "--video"])
def test_the_face_search_of_invert_shows_a_bar_unless_quiet(tmp_path, photo, monkeypatch, source):
    video = tmp_path / "clip.mp4"
    stylevid.save_video(torch.zeros(3, 3, 64, 64), video)
    given = str(photo if source == "--images" else video)
    argv = ["invert", source, given, "--align", "face", "--out", str(tmp_path / "c.safetensors")]
    for quiet in (False, True):
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        with pytest.raises(ValueError, match="no face found"):  # a blank image: the search ran and failed
            cli.main(argv + ["--quiet"] * quiet)
        assert ("find faces" in terminal.getvalue()) is not quiet, terminal.getvalue()
