"""The CUDA sources compile, link and import for sm_90 wherever a CUDA toolkit exists (GPU or not)."""

import os
import subprocess
import sys

import pytest

from stylevid.custom_ops import build

pytestmark = [
    pytest.mark.nvcc,
    pytest.mark.skipif(build.find_toolchain().nvcc is None, reason="no CUDA toolkit (nvcc) here"),
]


def test_both_extensions_build_and_import_through_the_cli(tmp_path):
    env = dict(os.environ, STYLEVID_CACHE_DIR=str(tmp_path))
    command = [sys.executable, "-m", "stylevid", "ops", "build", "--arch", "9.0"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
    assert first.returncode == 0, first.stdout + first.stderr
    for name in ("upfirdn2d", "bias_act"):
        spec = build.spec_for(name, arch="9.0")
        library = build.built_library(spec, tmp_path / "ops")
        assert library is not None, f"{name} left no finished build in {tmp_path}"
        # Import in a fresh process, as a user's first call would, and find the kernel's entry.
        probe = (
            "from stylevid.custom_ops import build; "
            f"m = build.build(build.spec_for({name!r}, arch='9.0')); print(m.{name})"
        )
        loaded = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
        )
        assert loaded.returncode == 0 and "built-in method" in loaded.stdout, loaded.stderr
    # A second build is a cache hit: no compiler runs.
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0 and second.stdout.count(" ok in 0.") == 2, second.stdout
