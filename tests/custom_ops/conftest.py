"""Fixtures for the custom-op tests."""

import pytest

from stylevid.custom_ops import build


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """The CPU build of the kernels' per-element device code (custom_ops/csrc/emulate.cpp)."""
    toolchain = build.find_toolchain()
    if toolchain.ninja is None or toolchain.cxx is None:
        pytest.fail(
            "building the kernel emulator needs ninja and a C++ compiler: " + "; ".join(toolchain.problems)
        )
    root = tmp_path_factory.mktemp("ops-cache")
    return build.build(build.spec_for("emulate"), root=root)
