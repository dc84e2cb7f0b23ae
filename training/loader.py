"""The real clips of each training step: a global order that depends only on (seed, clip position).

Clip position p (the p-th real clip shown to D, counted over all processes) is item
order(epoch)[i] of epoch e, where (e, i) = divmod(p, len(dataset)) and each epoch's order is a
permutation seeded by (seed, epoch). A resumed run, a run whose batch size changed at resume, and
any number of processes therefore see the clips one uninterrupted process would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class StepBatches:
    """Per step, this process's rows of the global batch as (epoch, index) pairs, from clip `start`."""

    def __init__(self, size: int, batch: int, rows: slice, seed: int, start: int):
        if size < 1:
            raise ValueError("the dataset holds no usable videos")
        self.size, self.batch, self.rows, self.seed, self.start = size, batch, rows, seed, start
        self._perm: tuple[int, torch.Tensor] | None = None

    def _order(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            self._perm = (epoch, torch.randperm(self.size, generator=generator))
        return self._perm[1]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        first = self.start
        while True:
            items = []
            for position in range(first + self.rows.start, first + self.rows.stop):
                epoch, i = divmod(position, self.size)
                items.append((epoch, int(self._order(epoch)[i])))
            yield items
            first += self.batch


class EpochItems(torch.utils.data.Dataset):
    """A clip dataset indexed by (epoch, index).

    The epoch travels with the index to `dataset.item(index, epoch)`: loader workers that prefetch
    across an epoch boundary each draw their item's own epoch (a shared set_epoch would race).
    Datasets without `item` have no per-epoch randomness and are indexed directly.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        item = getattr(self.dataset, "item", None)
        return self.dataset[index] if item is None else item(index, epoch)
