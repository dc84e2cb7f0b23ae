"""One process or many (torchrun): who am I, and summing gradients and statistics over processes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place: rank, world size, and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and logs."""
        return self.rank == 0

    def rows(self, global_batch: int) -> slice:
        """This process's share of a global batch."""
        per = global_batch // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """All-reduce (sum) in place; a no-op in one process."""
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate every process's tensor along dim 0, keeping gradients to this process's part."""
        if self.world == 1:
            return tensor
        return _Gather.apply(tensor, self.rank, self.world)

    def sum_gradients(self, parameters) -> None:
        """Sum the gradients of `parameters` over processes (each process's loss is its share of the mean)."""
        if self.world == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if grads:
            flat = torch.cat([g.flatten() for g in grads])
            dist.all_reduce(flat)
            for g, piece in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                g.copy_(piece.view_as(g))


class _Gather(torch.autograd.Function):
    """all_gather with a backward: each process gets the sum over processes of its slice's gradient."""

    @staticmethod
    def forward(ctx, tensor, rank, world):
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rank, ctx.rows = rank, tensor.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows], None, None


def setup(device: str | None = None) -> ProcessGroup:
    """Join torchrun's process group when launched by it (NCCL on GPU, gloo on CPU); else one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return ProcessGroup(rank, world, dev)
