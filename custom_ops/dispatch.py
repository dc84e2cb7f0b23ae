"""Chooses the CUDA kernels or the PyTorch reference: `impl` auto|cuda|ref|emulate, or STYLEVID_OPS.

'emulate' is the kernels' path everywhere: the CUDA kernels on CUDA tensors and their CPU emulation
(the same per-element code in a host loop, csrc/emulate.cpp) on CPU tensors, so that a whole
training step on the CPU runs what a GPU runs, dtypes and autograd Functions included.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from types import ModuleType

import torch

from . import build

IMPLS = ("auto", "cuda", "ref", "emulate")
ENV_VAR = "STYLEVID_OPS"


@dataclass
class _Loaded:
    module: ModuleType | None = None
    error: str | None = None
    warned: bool = False


# The build cache of this process: one load attempt per extension, so a failed build is neither
# retried nor reported on every call.
_LOADED: dict[str, _Loaded] = {}


def requested_impl(impl: str | None = None) -> str:
    """The implementation asked for: `impl` if given, else $STYLEVID_OPS, else 'auto'."""
    source = "impl" if impl is not None else ENV_VAR
    value = impl if impl is not None else os.environ.get(ENV_VAR, "auto")
    value = value.strip().lower()
    if value not in IMPLS:
        raise ValueError(f"{source}={value!r} is not an implementation; use one of {', '.join(IMPLS)}")
    return value


def _load(name: str) -> _Loaded:
    entry = _LOADED.get(name)
    if entry is None:
        entry = _Loaded()
        try:
            entry.module = build.build(build.spec_for(name))
        except build.BuildError as exc:
            entry.error = str(exc)
        _LOADED[name] = entry
    return entry


def plugin(name: str, x: torch.Tensor, impl: str | None = None) -> ModuleType | None:
    """The compiled extension `name` to run on `x`, or None to use the reference implementation.

    'ref' always gives None. 'cuda' gives the extension or raises with the reason. 'auto' gives
    the extension for CUDA tensors when it builds, else None, warning once if the build failed.
    'emulate' gives the extension for CUDA tensors and the CPU emulation of both kernels for CPU
    tensors, or raises with the reason.
    """
    choice = requested_impl(impl)
    if choice == "ref" or (choice == "auto" and not x.is_cuda):
        return None
    if choice == "emulate" and not x.is_cuda:
        if x.device.type != "cpu":
            raise RuntimeError(
                f"{name}: impl='emulate' runs the kernels on CPU or CUDA tensors, got one on {x.device}; "
                f"use impl='ref' for other devices"
            )
        entry = _load("emulate")
        if entry.module is None:
            raise RuntimeError(
                f"{name}: impl='emulate' was requested but the emulation is unusable: {entry.error}"
            )
        return entry.module
    if choice == "cuda" and not x.is_cuda:
        raise RuntimeError(
            f"{name}: impl='cuda' needs a CUDA tensor, got one on {x.device}; move it with "
            f".cuda() or use impl='auto'"
        )
    entry = _load(name)
    if entry.module is not None:
        return entry.module
    if choice in ("cuda", "emulate"):
        raise RuntimeError(
            f"{name}: impl='{choice}' was requested but the extension is unusable: {entry.error}"
        )
    if not entry.warned:
        entry.warned = True
        warnings.warn(
            f"stylevid: the CUDA {name} kernel is unavailable, using the slower PyTorch reference. "
            f"Cause: {entry.error}",
            RuntimeWarning,
            stacklevel=3,
        )
    return None


def status(impl: str | None = None) -> list[str]:
    """Lines describing which implementation each op will use on this machine, and why."""
    choice = requested_impl(impl)
    toolchain = build.find_toolchain()
    lines = [
        f"requested implementation: {choice} ({ENV_VAR}={os.environ.get(ENV_VAR, '<unset>')})",
        f"torch {torch.__version__}, built for CUDA {torch.version.cuda}",
    ]
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else []
    )
    lines.append(f"GPUs visible: {', '.join(gpus) if gpus else 'none'}")
    lines.append(
        f"CUDA toolkit: {toolchain.cuda_home or 'not found'} ({build.nvcc_version(toolchain) or 'no nvcc'})"
    )
    lines.append(f"ninja: {toolchain.ninja or 'not found'}; C++ compiler: {toolchain.cxx or 'not found'}")
    lines.append(f"build cache: {build.cache_root()}")
    lines.extend(f"problem: {p}" for p in toolchain.problems)
    for name in ("upfirdn2d", "bias_act"):
        lines.append(f"{name}: {_decision(name, choice, gpus, toolchain)}")
    return lines


def _decision(name: str, choice: str, gpus: list[str], toolchain: build.Toolchain) -> str:
    if choice == "ref":
        return "reference (requested)"
    if choice == "emulate" and not gpus:
        return "CPU emulation of the CUDA kernel (requested)"
    try:
        spec = build.spec_for(name)
    except build.BuildError as exc:
        return f"reference: {exc}"
    library = build.built_library(spec)
    where = f"built: {library}" if library else f"not built yet (key {spec.key[:16]})"
    if not gpus:
        return f"reference for CPU tensors; CUDA kernel {where}"
    if library is None and toolchain.problems:
        return (
            f"{'error' if choice == 'cuda' else 'reference'}: cannot build ({'; '.join(toolchain.problems)})"
        )
    return f"CUDA kernel for CUDA tensors, {where}"
