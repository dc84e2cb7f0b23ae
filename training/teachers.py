"""Factor teachers: frozen readers of the four factors, in whose space the disentanglement terms are computed.

A teacher maps frames [N, 3, H, W] in [-1, 1] to one reading per factor ({factor: [N, D]}, NaN where
it cannot measure) and compares two readings with `distance` ([N]); gradients flow to the frames,
never into the teacher (its weights are frozen). Two kinds:

- ``synthetic``: a FactorProbe trained on the renderer's ground truth with its own seed and shape
  (``training/teachers/synthetic64.safetensors``, made by ``make teachers``). The leakage metric
  reads with the evaluation probes the metrics package ships, which no loss ever sees.
- ``faces``: measurements of real faces (training/face_teacher.py) for real datasets.

`spread` is each factor's mean distance between readings of unrelated real frames: the unit the
pair terms measure movement in, so that "moved by 0.6" means 60 % of what a new sample moves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from stylevid.config import FACTORS
from stylevid.metrics.leakage import rms_distance
from stylevid.metrics.probes import load_probes, readable_columns
from stylevid.metrics.weights import file_sha256
from stylevid.training.config import TEACHERS

SYNTHETIC_TEACHER = Path(__file__).parent / "teachers" / "synthetic64.safetensors"


class Teacher(Protocol):
    """A frozen factor reader (module doc)."""

    kind: str
    weights_sha256: dict[str, str]

    def __call__(self, frames: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def distance(self, factor: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor: ...


class SyntheticTeacher(nn.Module):
    """The synthetic data's teacher: standardised probe outputs it reads with R² >= min_r2, RMS distance."""

    kind = "synthetic"

    def __init__(self, path: str | Path | None = None, min_r2: float = 0.5):
        super().__init__()
        path = Path(path) if path is not None else SYNTHETIC_TEACHER
        if not path.is_file():
            raise FileNotFoundError(
                f"no synthetic factor teacher at {path}: make it with `make teachers` (stylevid"
                f" train-probes --seed 1 --widths 32,64,96,128 --out {path})"
            )
        self.probe = load_probes(path)
        self.columns = readable_columns(self.probe, min_r2)
        self.weights_sha256 = {"teacher": file_sha256(path)}
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> SyntheticTeacher:
        return super().train(False)  # frozen: never in training mode (no dropout/batch-norm updates)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.probe(frames.float())
        return {f: out[f][:, self.columns[f]] for f in FACTORS}

    def distance(self, factor: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return rms_distance(a, b)


def load_teacher(kind: str, device: torch.device | str = "cpu") -> Teacher:
    """The frozen teacher of `kind` ('synthetic' or 'faces') on `device`."""
    if kind == "synthetic":
        return SyntheticTeacher().to(device)
    if kind == "faces":
        from stylevid.training.face_teacher import FaceTeacher  # noqa: PLC0415 - loads MTCNN and FaceNet

        return FaceTeacher(device=device)
    raise ValueError(f"unknown teacher {kind!r}; choose one of {', '.join(TEACHERS)} (or 'none')")


@torch.no_grad()
def teacher_spread(teacher: Teacher, frames: torch.Tensor, batch: int = 64) -> dict[str, float]:
    """Per factor, the mean distance between readings of unrelated frames [M, 3, H, W] (M >= 2).

    Frame i is compared with frame i + M // 2 (mod M): frames from different clips when `frames`
    holds one frame per clip.
    """
    if len(frames) < 2:
        raise ValueError(f"the spread needs at least 2 frames, got {len(frames)}")
    parts = [teacher(chunk) for chunk in frames.split(batch)]
    readings = {f: torch.cat([p[f] for p in parts]) for f in FACTORS}
    spread = {}
    for f in FACTORS:
        d = teacher.distance(f, readings[f], readings[f].roll(len(frames) // 2, dims=0))
        value = float(d.nanmean()) if bool((~d.isnan()).any()) else float("nan")
        if not value > 0:
            raise ValueError(
                f"the teacher reads the same {f} in every real frame (spread {value}): it cannot"
                " measure that factor on this data; pick another teacher or 'none'"
            )
        spread[f] = value
    return spread
