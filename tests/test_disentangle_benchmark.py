"""benchmarks/disentangle.py's ablation variants: each is a valid synth64 recipe that switches what it
names and nothing else."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from stylevid.training.config import train_preset

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "disentangle.py"
_spec = importlib.util.spec_from_file_location("disentangle", SCRIPT)
disentangle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(disentangle)


def _changes(a, b, prefix=""):
    """The dotted names of the fields where dataclasses a and b differ."""
    out = []
    for field in dataclasses.fields(a):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if dataclasses.is_dataclass(x):
            out += _changes(x, y, f"{prefix}{field.name}.")
        elif x != y:
            out.append(f"{prefix}{field.name}")
    return sorted(out)


@pytest.mark.parametrize(
    ("variant", "changed"),
    [
        ("full", []),
        ("no_value_prior", ["loss.value_prior"]),
        ("no_imitate", ["loss.imitate"]),
        ("no_teacher", ["disentangle.teacher", "loss.imitate"]),
        ("pose_marginal", ["model.generator.pose_marginal"]),
        ("no_centred_depth", ["model.generator.centred_depth"]),
        ("renderer_surfaces", ["model.generator.body_shape", "model.generator.specular"]),
        ("no_template", ["model.generator.face_template"]),
        (
            "old_priors",
            [
                "loss.imitate",
                "loss.value_prior",
                "model.generator.centred_depth",
                "model.generator.face3d",
                "model.generator.pose_warp",
                "model.generator.shading",
            ],
        ),
    ],
)
def test_each_variant_is_a_valid_recipe_that_switches_what_it_names(variant, changed):
    full = train_preset("synth64")
    cfg = disentangle.VARIANTS[variant](train_preset("synth64"))
    type(cfg).from_dict(cfg.to_dict())  # validates as a run's stored config does
    assert _changes(full, cfg) == changed


def test_every_variant_builds():
    for name, change in disentangle.VARIANTS.items():
        cfg = change(train_preset("synth64"))
        assert type(cfg).from_dict(cfg.to_dict()) is not None, name


def test_a_variant_that_raises_does_not_lose_the_variants_after_it(capsys):
    """The Fréchet crash of one variant once stopped the whole list; now it is recorded and the rest run."""
    ran, recorded = [], []

    def run_one(name):
        ran.append(name)
        if name == "no_keep":
            raise FloatingPointError("complex square root")
        return {
            "variant": name,
            "kimg": 1.0,
            "leakage": 0.5,
            "interval": {"leakage": (0.4, 0.6)},
            "control": 0.8,
            "control_per_factor": {"identity": 0.8},
            "frame_fd16": 20.0,
            "frame_fd_vgg": 0.2,
            "faces_found": 0.5,
        }

    rows = disentangle.run_all(["full", "no_keep", "no_move"], run_one, lambda r: recorded.append(len(r)))
    assert ran == ["full", "no_keep", "no_move"]
    assert recorded == [1, 2, 3]
    assert [r["variant"] for r in rows] == ["full", "no_keep", "no_move"]
    assert rows[1]["error"] == "FloatingPointError: complex square root"
    assert "error" not in rows[2]
    assert "complex square root" in capsys.readouterr().err
    lines = disentangle.table(rows, 0.5).splitlines()
    assert lines[3].startswith("| no_keep | failed: FloatingPointError: complex square root |")
    assert lines[4].startswith("| no_move | 1.0 | 0.50 [0.40, 0.60] |")
