"""Every file stylevid reads back, valid JSON of the wrong shape: one ValueError naming the file and field.

Codes files, generator and encoder checkpoints' configurations, a training configuration and dataset.json,
each with a missing field, a value of the wrong type or a list where an object belongs. Not a KeyError,
TypeError or AttributeError from deep inside: the CLI prints a ValueError as one line.
"""

import json

import pytest
import torch
from tiny import tiny_config, tiny_training

import stylevid
from stylevid import checkpoint
from stylevid.codes_file import KIND, load_codes, save_codes
from stylevid.data.index import read_index
from stylevid.encoder import EncoderConfig, load_encoder
from stylevid.networks import Generator


def _changed(data: dict, dotted: str, value) -> dict:
    """A deep copy of data with the field at `dotted` ('a.b') set to value (or removed: ...)."""
    data = json.loads(json.dumps(data))
    *parents, last = dotted.split(".")
    inner = data
    for key in parents:
        inner = inner[key]
    if value is ...:
        del inner[last]
    else:
        inner[last] = value
    return data


def _codes_file(tmp_path, change):
    """A codes file whose config or tensors `change` edits: (config, tensors) -> (config, tensors)."""
    gen = stylevid.VideoGenerator(Generator(tiny_config().generator), tiny_config())
    good = checkpoint.load_checkpoint(save_codes(tmp_path / "good.safetensors", gen.sample(2, seed=0)))
    config, tensors = change(good.config, {m: dict(t) for m, t in good.tensors.items()})
    return checkpoint.save_checkpoint(tmp_path / "codes.safetensors", tensors, config), load_codes


def _config_of(key, good, dotted, value, reader):
    def write(tmp_path):
        config = {key: _changed(good, dotted, value) if dotted else value}
        tensors = {"encoder": {"x": torch.zeros(1)}} if key == "encoder" else {"G_ema": {"x": torch.zeros(1)}}
        return checkpoint.save_checkpoint(tmp_path / f"{key}.safetensors", tensors, config), reader

    return write


def _export(path):
    from stylevid.training.builtin import export_builtin  # noqa: PLC0415

    export_builtin(path, path.parent / "no-data.zip", folder=path.parent)


def _dataset(dotted, value):
    def write(tmp_path):
        good = {
            "format": "stylevid-dataset",
            "format_version": 1,
            "fps": 25.0,
            "resolution": 16,
            "factor_names": {
                "identity": ["a"],
                "pose": ["yaw", "pitch", "roll"],
                "lighting": ["b"],
                "background": ["c"],
            },
            "videos": [],
        }
        (tmp_path / "ds").mkdir()
        (tmp_path / "ds" / "dataset.json").write_text(json.dumps(_changed(good, dotted, value)))
        return tmp_path / "ds" / "dataset.json", lambda path: read_index(path.parent)

    return write


MODEL = tiny_config().to_dict()
TRAINING = tiny_training().to_dict()
ENCODER = EncoderConfig().to_dict()
CASES = {
    "codes: spacing missing": (lambda t: _codes_file(t, lambda c, x: ({"kind": KIND}, x)), "spacing.pose"),
    "codes: spacing a string": (
        lambda t: _codes_file(t, lambda c, x: (_changed(c, "spacing.lighting", "16"), x)),
        "spacing.lighting",
    ),
    "codes: spacing a list": (
        lambda t: _codes_file(t, lambda c, x: ({**c, "spacing": [16, 16]}, x)),
        "spacing",
    ),
    "codes: a tensor missing": (
        lambda t: _codes_file(
            t, lambda c, x: (c, {**x, "pose": {k: v for k, v in x["pose"].items() if k != "psi"}})
        ),
        "pose.psi",
    ),
    "codes: a tensor of the wrong shape": (
        lambda t: _codes_file(
            t, lambda c, x: (c, {**x, "lighting": {**x["lighting"], "psi": torch.ones(3)}})
        ),
        "psi",
    ),
    "model: missing": (_config_of("other", {}, None, {}, stylevid.load), "model"),
    "model: a list": (_config_of("model", MODEL, None, [1, 2], stylevid.load), "model"),
    "model: generator a list": (_config_of("model", MODEL, "generator", [], stylevid.load), "generator"),
    "model: a string for a number": (
        _config_of("model", MODEL, "generator.z_dim", "16", stylevid.load),
        "generator.z_dim",
    ),
    "model: a float for an integer": (
        _config_of("model", MODEL, "discriminator.frames", 3.5, stylevid.load),
        "discriminator.frames",
    ),
    "model: an unknown setting": (_config_of("model", MODEL, "generator.depth", 3, stylevid.load), "depth"),
    "encoder: a string for a number": (
        _config_of("encoder", ENCODER, "w_dim", "128", load_encoder),
        "encoder.w_dim",
    ),
    "encoder: a list": (_config_of("encoder", ENCODER, None, [], load_encoder), "encoder"),
    "training: model missing": (_config_of("training", TRAINING, "model", ..., _export), "model"),
    "training: a list": (_config_of("training", TRAINING, None, [], _export), "training"),
    "training: loss a list": (_config_of("training", TRAINING, "loss", [1.0], _export), "training.loss"),
    "training: a string for a weight": (
        _config_of("training", TRAINING, "loss.r1_gamma", "1", _export),
        "training.loss.r1_gamma",
    ),
    "training: betas a number": (_config_of("training", TRAINING, "betas", 0.9, _export), "training.betas"),
    "training: augment a string": (
        _config_of("training", TRAINING, "augment", "on", _export),
        "training.augment",
    ),
    "dataset: factor names a number": (_dataset("factor_names.identity", 5), "factor_names['identity']"),
    "dataset: factor names a list": (_dataset("factor_names", ["yaw"]), "factor_names"),
    "dataset: fps a string": (_dataset("fps", "25"), "fps"),
    "dataset: resolution true": (_dataset("resolution", True), "resolution"),
    "dataset: videos an object": (_dataset("videos", {"a": 1}), "videos"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_file_is_one_error_naming_the_file_and_the_field(tmp_path, case):
    write, field = CASES[case]
    path, read = write(tmp_path)
    with pytest.raises(ValueError) as error:
        read(path)
    message = str(error.value)
    assert str(path) in message and field in message, message
