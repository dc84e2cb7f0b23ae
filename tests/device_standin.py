"""Running device code without the device: the trainer's steps with every tensor off the CPU, in CI.

Two stand-ins for a GPU, each checked by `OffHostMode`, which refuses any op (other than a copy)
whose tensors sit on more than one device — stricter than CUDA, which lets a 0-dim CPU tensor
join a CUDA op, so a stray CPU scalar is caught too:

- ``meta`` tensors have shapes and no values; autograd (double backward included) and optimizers
  run on them, so whole training steps run: G, D, R1, ADA, EMA, snapshot and resume.
- ``FakeTensorMode``'s fake ``cuda`` tensors take the code paths that ask ``x.is_cuda``, but
  backward needs a CUDA context, so only forward passes run on them.

Neither holds values, so the mode answers the host's reads of a value (``.item()``, ``float(t)``,
``bool(t)``) with 0 / False, and copies to the CPU with zeros. Training code is written so that
these answers mean "nothing wrong" (it tests for the bad case: ``if nonfinite: raise``). What this
proves: every tensor the code creates or combines is on the device it should be, in every step.
What it does not: numerics, the CUDA kernels, NCCL, memory, speed, or value-dependent branches.
"""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

aten = torch.ops.aten
COPIES = {aten._to_copy.default, aten.copy_.default, aten.lift_fresh.default}


class DeviceMixError(RuntimeError):
    """An op combined tensors on different devices."""


def _no_values(t: torch.Tensor) -> bool:
    return t.device.type == "meta" or isinstance(t, FakeTensor)


class OffHostMode(TorchDispatchMode):
    """Refuses ops mixing devices; answers host reads of value-less tensors with 0 / False (module doc)."""

    def __init__(self):
        super().__init__()
        self.host_reads = 0  # values read by the host: .item(), float(t), bool(t), copies to the CPU
        # Copies from the CPU to the device that are not non_blocking: on CUDA each one synchronises
        # the stream (PyTorch waits for the copy, and so for all the work queued before it).
        self.blocking_uploads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten._local_scalar_dense.default and _no_values(args[0]):
            self.host_reads += 1
            t = args[0]
            return False if t.dtype == torch.bool else 0.0 if t.is_floating_point() else 0
        if func is aten._to_copy.default and args[0].device.type == "meta":
            target = torch.device(kwargs.get("device") or "meta")
            if target.type == "cpu":
                self.host_reads += 1  # a copy to the host waits for the device as .item() does
                return torch.zeros(args[0].shape, dtype=kwargs.get("dtype") or args[0].dtype)
        if _blocking_upload(func, args, kwargs):
            self.blocking_uploads += 1
        tensors = [x for x in tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
        devices = {t.device.type for t in tensors}
        if len(devices) > 1 and func not in COPIES:
            shapes = ", ".join(f"{list(t.shape)} on {t.device}" for t in tensors)
            raise DeviceMixError(f"{func} combines tensors on {sorted(devices)}: {shapes}")
        return func(*args, **kwargs)


def _blocking_upload(func, args, kwargs) -> bool:
    if func is aten._to_copy.default:
        source, target = args[0].device, torch.device(kwargs.get("device") or args[0].device)
        non_blocking = kwargs.get("non_blocking", False)
    elif func is aten.copy_.default:
        target, source = args[0].device, args[1].device
        non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
    else:
        return False
    return source.type == "cpu" and target.type != "cpu" and not non_blocking


def move_by_replacing(module: torch.nn.Module, device) -> torch.nn.Module:
    """Module.to for fake tensors: torch 2.14 cannot swap a fake parameter in place (weak references)."""
    for m in module.modules():
        for key, p in m._parameters.items():
            if p is not None:
                m._parameters[key] = torch.nn.Parameter(p.detach().to(device), p.requires_grad)
        for key, b in m._buffers.items():
            if b is not None:
                m._buffers[key] = b.to(device)
    return module
