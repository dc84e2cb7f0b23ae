"""A non-editable install puts everything under the stylevid namespace: kernels, probes, teacher, models."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_install_layout(tmp_path):
    target = tmp_path / "site"
    # setuptools builds in build/lib and never removes what a previous build left there (a module
    # since turned into a package would be installed beside it): start from a clean one.
    shutil.rmtree(ROOT / "build" / "lib", ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    top = {p.name for p in target.iterdir() if not p.name.endswith((".dist-info", ".egg-info"))}
    # Only our namespace, and the console script folder pip writes beside it.
    assert top <= {"stylevid", "bin"}, top
    csrc = target / "stylevid" / "custom_ops" / "csrc"
    for name in (
        "upfirdn2d.cu",
        "upfirdn2d.cpp",
        "bias_act.cu",
        "bias_act.cpp",
        "emulate.cpp",
        "common.h",
    ):
        assert (csrc / name).exists(), f"{name} missing from the installed package"
    probes = target / "stylevid" / "metrics" / "probes" / "synthetic64.safetensors"
    assert probes.exists(), "the leakage metric's factor probes are missing from the installed package"
    for shipped in (
        "training/teachers/synthetic64.safetensors",
        "builtin/synth64.safetensors",
        "builtin/synth64.json",
        "builtin/synth64-encoder.safetensors",
        "builtin/synth64-encoder.json",
        "studio/static/index.html",
        "studio/static/studio.js",
    ):
        assert (target / "stylevid" / shipped).exists(), f"{shipped} is missing from the installed package"
    probe = (
        "import stylevid, stylevid.data.synthetic, stylevid.data.prepare, stylevid.networks, "
        "stylevid.encoder, stylevid.custom_ops as o, stylevid.training, stylevid.metrics; "
        "print(o.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(str(target))
