"""How busy a GPU was over a time window: nvidia-smi's utilization.gpu, sampled in the background.

utilization.gpu is the share of each sample period (1/6 s to 1 s, by GPU) in which at least one
kernel ran: a step held back by the host shows as a low share. It counts every process on that
GPU, so read it on a card nobody else uses.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import torch

PERIOD_MS = 250


class GpuBusy:
    """Samples one CUDA device's utilization.gpu every PERIOD_MS while open; `share(start, end)` in [0, 1]."""

    def __init__(self, device: torch.device):
        self.device = device
        self.samples: list[tuple[float, float]] = []  # (time.monotonic(), percent)
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> GpuBusy:
        if self.device.type != "cuda" or shutil.which("nvidia-smi") is None:
            return self
        # nvidia-smi numbers GPUs in PCI order, CUDA by CUDA_VISIBLE_DEVICES: the UUID names the same card.
        uuid = str(torch.cuda.get_device_properties(self.device).uuid)
        uuid = uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
        command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        self._process = subprocess.Popen(
            [*command, "-i", uuid, "-lms", str(PERIOD_MS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self._process.stdout:
            try:
                self.samples.append((time.monotonic(), float(line)))
            except ValueError:  # '[N/A]' where the GPU does not report it (some MIG slices)
                continue

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._reader.join(timeout=10)

    def share(self, start: float, end: float) -> float | None:
        """Mean busy share in [0, 1] of the samples from `start` to `end` (time.monotonic()), or None."""
        values = [percent for t, percent in self.samples if start <= t <= end]
        return sum(values) / len(values) / 100 if values else None
