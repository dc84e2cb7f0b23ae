"""Shared fixtures: the tiny model of tests/tiny.py, and the kernels' CPU emulation (STYLEVID_OPS=emulate)."""

import types

import pytest
import torch
from tiny import tiny_config

from stylevid.api import VideoGenerator
from stylevid.config import ModelConfig
from stylevid.custom_ops import build, dispatch
from stylevid.networks import Generator


@pytest.fixture
def config() -> ModelConfig:
    return tiny_config()


@pytest.fixture
def generator(config) -> Generator:
    torch.manual_seed(0)
    return Generator(config.generator)


@pytest.fixture
def video_generator(generator, config) -> VideoGenerator:
    return VideoGenerator(generator, config)


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


@pytest.fixture
def emulated_ops(emulator, monkeypatch) -> dict[str, int]:
    """STYLEVID_OPS=emulate with the session's emulator build; counts the kernel launches per op."""
    calls = {"bias_act": 0, "upfirdn2d": 0}

    def counting(name):
        def run(*args):
            calls[name] += 1
            return getattr(emulator, name)(*args)

        return run

    module = types.SimpleNamespace(bias_act=counting("bias_act"), upfirdn2d=counting("upfirdn2d"))
    monkeypatch.setitem(dispatch._LOADED, "emulate", dispatch._Loaded(module=module))
    monkeypatch.setenv(dispatch.ENV_VAR, "emulate")
    return calls
