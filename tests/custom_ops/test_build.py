"""The extension builder and the dispatcher: cache, rebuild, locks, missing tools, warn-once fallback."""

import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

from stylevid.custom_ops import build, dispatch, upfirdn2d

# A minimal CPython extension: it compiles in about a second, so the cache logic is tested on
# real builds without paying for the torch headers.
TINY = r"""
#include <Python.h>
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define STR2(a) #a
#define STR(a) STR2(a)
static PyObject* value(PyObject*, PyObject*) { return PyLong_FromLong(VALUE); }
static PyMethodDef methods[] = {{"value", value, METH_NOARGS, ""}, {nullptr, nullptr, 0, nullptr}};
static PyModuleDef def = {PyModuleDef_HEAD_INIT, STR(TORCH_EXTENSION_NAME), nullptr, -1, methods};
PyMODINIT_FUNC CAT(PyInit_, TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&def); }
"""


def _tiny(folder, value):
    folder.mkdir(exist_ok=True)
    path = folder / "tiny.cpp"
    path.write_text(TINY.replace("VALUE", str(value)))
    return build.BuildSpec("tiny", [path], arch=None)


def test_cache_is_reused_and_a_source_change_rebuilds(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    first = _tiny(tmp_path / "src", 1)
    assert build.build(first, root=root).value() == 1
    assert build.built_library(first, root) is not None

    def no_compiling(*args):
        raise AssertionError("a cached extension was compiled again")

    with monkeypatch.context() as patch:
        patch.setattr(build, "_compile", no_compiling)
        assert build.build(_tiny(tmp_path / "src", 1), root=root).value() == 1

    second = _tiny(tmp_path / "src", 2)
    assert second.key != first.key
    assert build.build(second, root=root).value() == 2
    assert len([p for p in root.iterdir() if p.is_dir()]) == 2


def test_key_covers_headers_arch_and_torch(tmp_path, monkeypatch):
    spec = _tiny(tmp_path, 1)
    header = tmp_path / "helper.h"
    header.write_text("// one\n")
    key = build.build_key(spec.sources, None)
    assert build.build_key(spec.sources, "9.0") != key
    header.write_text("// two\n")
    assert build.build_key(spec.sources, None) != key
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    assert build.build_key(spec.sources, None) != key


def test_leftovers_of_a_killed_build_are_ignored(tmp_path):
    """A build killed halfway leaves torch's baton file and a partial library, but no marker."""
    spec = _tiny(tmp_path / "src", 3)
    root = tmp_path / "cache"
    folder = spec.directory(root)
    folder.mkdir(parents=True)
    (folder / "lock").write_text("")  # torch's FileBaton would wait on this forever
    (folder / f"{spec.module_name}.so").write_bytes(b"truncated")
    assert build.built_library(spec, root) is None
    assert build.build(spec, root=root, lock_timeout=30).value() == 3


def _holder(lock_path):
    code = (
        "import sys, time; from stylevid.custom_ops.build import FileLock; "
        f"FileLock({str(lock_path)!r}).acquire(); print('held', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_lock_of_a_killed_builder_is_taken_at_once(tmp_path):
    lock = tmp_path / "x.lock"
    proc = _holder(lock)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock.exists()  # the file stays behind, as after any crash
    started = time.monotonic()
    with build.FileLock(lock, timeout=10):
        pass
    assert time.monotonic() - started < 5


def test_lock_held_by_a_live_builder_times_out_naming_it(tmp_path):
    lock = tmp_path / "x.lock"
    proc = _holder(lock)
    try:
        with pytest.raises(build.BuildLockTimeout, match=f"pid {proc.pid}"):
            build.FileLock(lock, timeout=0.5).acquire()
    finally:
        proc.kill()
        proc.wait()


def test_missing_tools_are_named_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "no-toolkit"))
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setattr(build, "_ninja_path", lambda: None)
    toolchain = build.find_toolchain()
    text = "\n".join(toolchain.problems)
    assert "no bin/nvcc" in text and "pip install ninja" in text and "C++ compiler" in text
    with pytest.raises(build.BuildError, match="no bin/nvcc"):
        toolchain.check(cuda=True)
    with pytest.raises(build.BuildError) as err:
        toolchain.check(cuda=False)
    assert "nvcc" not in str(err.value) and "ninja" in str(err.value)


def test_arch_must_be_named_without_a_gpu(monkeypatch):
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(build.BuildError, match="TORCH_CUDA_ARCH_LIST=9.0"):
        build.cuda_arch_list()
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    assert build.cuda_arch_list() == "8.0;9.0"


class FakeCudaTensor:
    """Stands in for a CUDA tensor: the dispatcher only asks where a tensor lives."""

    is_cuda = True
    device = "cuda:0"


@pytest.fixture
def failing_build(monkeypatch):
    calls = []

    def fail(spec, **kwargs):
        calls.append(spec.name)
        raise build.BuildError("nvcc exploded")

    monkeypatch.setattr(dispatch, "_LOADED", {})
    monkeypatch.setattr(build, "build", fail)
    monkeypatch.setattr(build, "spec_for", lambda name, arch=None: build.BuildSpec(name, [], "9.0", key="k"))
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    return calls


def test_auto_falls_back_with_one_warning_naming_the_cause(failing_build):
    with pytest.warns(RuntimeWarning, match="nvcc exploded"):
        assert dispatch.plugin("upfirdn2d", FakeCudaTensor()) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dispatch.plugin("upfirdn2d", FakeCudaTensor()) is None
    assert failing_build == ["upfirdn2d"]  # built once, not on every call


def test_cuda_requested_raises_with_the_cause(failing_build):
    with pytest.raises(RuntimeError, match="impl='cuda'.*nvcc exploded"):
        dispatch.plugin("bias_act", FakeCudaTensor(), impl="cuda")


def test_ref_and_cpu_tensors_never_build(failing_build):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dispatch.plugin("upfirdn2d", FakeCudaTensor(), impl="ref") is None
        assert dispatch.plugin("upfirdn2d", torch.zeros(1)) is None
    assert failing_build == []


def test_environment_variable_is_honoured(failing_build, monkeypatch):
    monkeypatch.setenv("STYLEVID_OPS", "ref")
    assert dispatch.plugin("upfirdn2d", FakeCudaTensor()) is None
    assert failing_build == []
    monkeypatch.setenv("STYLEVID_OPS", "cuda")
    with pytest.raises(RuntimeError, match="needs a CUDA tensor"):
        upfirdn2d(torch.zeros(1, 1, 4, 4), None)
    monkeypatch.setenv("STYLEVID_OPS", "fast")
    with pytest.raises(ValueError, match="STYLEVID_OPS='fast'"):
        dispatch.plugin("upfirdn2d", torch.zeros(1))


def test_auto_uses_a_built_extension(monkeypatch):
    sentinel = object()
    monkeypatch.setattr(dispatch, "_LOADED", {})
    monkeypatch.setattr(build, "build", lambda spec, **kwargs: sentinel)
    monkeypatch.setattr(build, "spec_for", lambda name, arch=None: build.BuildSpec(name, [], "9.0", key="k"))
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    assert dispatch.plugin("bias_act", FakeCudaTensor()) is sentinel


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "stylevid", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_ops_status_command():
    result = _cli("ops", "status")
    assert result.returncode == 0, result.stderr
    for needle in ("requested implementation: auto", "upfirdn2d:", "bias_act:", "build cache:"):
        assert needle in result.stdout


def test_ops_build_without_gpu_or_arch_says_what_to_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TORCH_CUDA_ARCH_LIST"}
    env.update(STYLEVID_CACHE_DIR=str(tmp_path), CUDA_VISIBLE_DEVICES="")
    result = _cli("ops", "build", "--ops", "bias_act", env=env)
    assert result.returncode == 1
    assert "TORCH_CUDA_ARCH_LIST" in result.stderr
