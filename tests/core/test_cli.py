"""The command line refuses bad input where it is parsed: one line naming the option, exit status 2."""

import argparse
import itertools
from pathlib import Path

import pytest
import torch
from PIL import Image

import stylevid
from stylevid import cli, options
from stylevid.options import UsageError

BAD = {
    "negative": "-5",
    "zero": "0",
    "nan": "nan",
    "huge": "1e400",
    "huge_int": "100000000000000000000",
    "garbage": "five",
}
# Values of BAD that an option accepts, and why: (subcommand, option, case).
LEGAL = {
    **{
        (job, "--seed", "zero"): "seed 0 is a seed like any other"
        for job in ("synth", "metrics", "train-probes", "train-encoder")
    },
    ("invert", "--optimize", "zero"): "0 optimisation steps: the encoder alone",
    ("animate", "--motion-seed", "zero"): "seed 0 is a seed like any other",
    ("animate", "--background-seed", "zero"): "seed 0 is a seed like any other",
    ("studio", "--port", "zero"): "port 0 asks the system for any free port",
    ("edit", "--seeds", "zero"): "seed 0 is a seed like any other",
    **{
        ("edit", option, case): "0 and negative are angles or light values like any other; each is checked"
        " against the loaded model's range (cli._check_controls)"
        for option in (
            "--yaw",
            "--pitch",
            "--roll",
            *(f"--light-{n}" for n in ("azimuth", "elevation", "intensity", "ambient", "warmth", "strength")),
        )
        for case in ("zero", "negative")
    },
    ("generate", "--seeds", "zero"): "seed 0 is a seed like any other",
    **{(job, "--workers", "zero"): "0 loads the data in the training process" for job in ("train", "demo")},
    ("train", "--r1-gamma", "zero"): "0 turns the R1 penalty off",
    ("edit", "--freeze-at", "zero"): "time 0 is the first frame",
    **{
        (job, "--psi", "zero"): "truncation psi 0 shows the average of every factor"
        for job in ("generate", "edit")
    },
    **{(job, "--psi", "negative"): "a negative psi goes past the average" for job in ("generate", "edit")},
}
FREE_TEXT = (None, str, Path)  # paths and names: checked where they are opened


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(subcommand path, parser) of every subcommand that runs, e.g. (('ops', 'build'), parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaves(sub, (*path, name))
                if not any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield (*path, name), sub


def _valid(action: argparse.Action) -> str:
    if action.type in FREE_TEXT:
        return "x"
    if action.type is options.video_file:
        return "x.mp4"
    return "pose:0,1" if action.type in (options.factor_seeds, options.moving_factor_seeds) else "1"


def _checked_options():
    for path, sub in _leaves(cli.parser()):
        for action in sub._actions:
            if action.option_strings and action.type not in FREE_TEXT:
                yield path, sub, action


def _cases():
    for (path, sub, action), (case, value) in itertools.product(_checked_options(), BAD.items()):
        option = action.option_strings[-1]
        if (path[0], option, case) in LEGAL:
            continue
        required = [
            arg
            for a in sub._actions
            if a.required and a is not action
            for arg in (a.option_strings[0], _valid(a))
        ]
        yield pytest.param(
            [*path, *required, option, value], option, value, id=f"{' '.join(path)} {option} {case}"
        )


def _refusal(argv, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.console(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    return errors[0]


def test_the_table_covers_every_subcommand():
    jobs = {path[0] for path, _, _ in _checked_options()}
    assert jobs == {
        "generate",
        "edit",
        "train",
        "synth",
        "prepare",
        "metrics",
        "train-probes",
        "demo",
        "train-encoder",
        "invert",
        "animate",
        "studio",
    }
    assert len(list(_cases())) > 200


@pytest.mark.parametrize("argv, option, value", list(_cases()))
def test_a_bad_value_is_refused_in_one_line_naming_the_option(
    argv, option, value, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a value wrongly accepted runs the command: keep what it writes here
    line = _refusal(argv, capsys)
    assert f"argument {option}" in line and value in line


def test_every_numeric_option_checks_its_range():
    plain = [
        f"{' '.join(p)} {a.option_strings[-1]}" for p, _, a in _checked_options() if a.type in (int, float)
    ]
    assert plain == [], "give these a validator of stylevid.options (int and float take -5, nan, inf)"


def test_legal_values_are_accepted():
    parse = cli.parser().parse_args
    args = parse(
        ["edit", "--network", "x", "--out", "x", "--psi", "-0.5", "--freeze-at", "0", "--steps", "2"]
    )
    assert (args.psi, args.freeze_at, args.steps) == (-0.5, 0.0, 2)
    assert parse(["train", "--data", "x", "--r1-gamma", "0", "--workers", "0"]).r1_gamma == 0.0


def test_seeds_parse_as_ranges_without_listing_them():
    assert list(options.seeds("0-3,7")) == [0, 1, 2, 3, 7] and list(options.seeds("5")) == [5]
    assert len(options.seeds("0-100000000")) == 100_000_001
    for text in ("5-2", "-5", "1,,2", "0-x"):
        with pytest.raises(argparse.ArgumentTypeError, match="write them like 0-7"):
            options.seeds(text)


@pytest.mark.parametrize("text", ["identity:5-2", "identity:", "nose:0,1", "identity:0-1000"])
def test_bad_edit_seeds_are_refused(text, capsys):
    assert "argument --swap" in _refusal(["edit", "--network", "x", "--out", "x", "--swap", text], capsys)


@pytest.mark.parametrize("job", ["generate", "edit", "train", "metrics"])
@pytest.mark.parametrize(
    ("asked", "count", "says"),
    [
        ("cuda", 0, "no CUDA GPU (torch.cuda.device_count() is 0); pass --device cpu"),
        ("cuda:3", 2, "has 2 CUDA GPU(s), cuda:0 to cuda:1; pass one"),
        ("tpu", 1, "pass --device cpu or cuda"),
    ],
)
def test_a_device_that_does_not_exist_is_refused(job, asked, count, says, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    required = {
        "generate": ["--network", "x", "--out", "x", "--seeds", "0"],
        "edit": ["--network", "x", "--out", "x"],
        "train": ["--data", "x"],
        "metrics": ["--network", "x"],
    }[job]
    line = _refusal([job, *required, "--device", asked], capsys)
    assert f"argument --device: {asked!r}" in line and says in line


def test_generate_streams_seed_by_seed(video_generator, tmp_path, monkeypatch):
    network = video_generator.save(tmp_path / "g.safetensors")
    written = []

    def save(video, path, **kwargs):
        written.append(Path(path).name)
        if len(written) == 2:
            raise KeyboardInterrupt  # a user stopping a long run
        list(video)

    monkeypatch.setattr(stylevid, "save_video", save)
    argv = [
        "generate",
        "--network",
        str(network),
        "--seeds",
        "0-100000000",
        "--frames",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert cli.console(argv) == 130
    assert written == ["seed0000.mp4", "seed0001.mp4"]


def test_grid_of_too_many_seeds_is_a_usage_error(video_generator, tmp_path, capsys):
    network = video_generator.save(tmp_path / "g.safetensors")
    argv = ["generate", "--network", str(network), "--seeds", "0-1000", "--grid", "--out", str(tmp_path)]
    assert cli.console(argv) == 2
    assert "--grid" in capsys.readouterr().err and not list(tmp_path.glob("seed*"))


def test_edit_png_is_one_row_per_video(video_generator, tmp_path):
    network = video_generator.save(tmp_path / "g.safetensors")
    argv = ["edit", "--network", str(network), "--out", str(tmp_path), "--frames", "3", "--format", "png"]
    assert cli.main([*argv, "--swap", "identity:0,1"]) == 0
    width, height = Image.open(tmp_path / "swap-identity-0-1.png").size
    size = 16  # the tiny generator's frames; the gaps between them are narrower
    assert (width // size, height // size) == (3, 4), "3 frames across; originals, then swapped, down"


def test_edit_freeze_past_the_last_frame_is_a_usage_error(video_generator, tmp_path, capsys):
    network = video_generator.save(tmp_path / "g.safetensors")
    argv = ["edit", "--network", str(network), "--out", str(tmp_path), "--frames", "4", "--freeze", "pose:0"]
    assert cli.console([*argv, "--freeze-at", "9"]) == 2
    assert "--freeze-at 9" in capsys.readouterr().err


def test_runtime_errors_exit_1_and_usage_errors_2(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("STYLEVID_TRACEBACK", raising=False)
    assert cli.console(["generate", "--network", str(tmp_path / "none"), "--seeds", "0", "--out", "x"]) == 1
    assert cli.console(["edit", "--network", "x", "--out", "x"]) == 2
    assert capsys.readouterr().err.count("stylevid: error:") == 2
    monkeypatch.setenv("STYLEVID_TRACEBACK", "1")
    with pytest.raises(UsageError, match="give at least one of --swap"):
        cli.console(["edit", "--network", "x", "--out", "x"])
