"""The imitation term: the factor teacher's reading of each generated frame held to the pose and light the
face layer says it drew (loss.imitate; off by default).

Neither the probes nor the pair terms' teacher can see most of the light the built-in model draws: a set
elevation or ambient barely moves their reading (docs/results.md, the light sweeps), and the `move` term
asks only that a new light move the teacher's reading somewhere. This term asks each frame to look like its
own values: the teacher's standardised reading of every pose and light value it reads well, against the
generator's value in the same standardisation, squared. The generator's values are the target and are
detached: the frame must show them, not they follow the frame. The teacher is the synthetic one (another
seed and shape than the evaluation probes, which no loss reads); DiscoFaceGAN's imitative losses tie its
renders to their 3DMM parameters in the same spirit.
"""

from __future__ import annotations

import math

import torch

from stylevid.data.synthetic.factors import FACTOR_NAMES
from stylevid.metrics.probes import STARTS
from stylevid.networks.face3d import ANGLE_NAMES

IMITATED = ("pose", "lighting")


class Imitation:
    """The term for one teacher: which of its outputs it imitates and their standardisation."""

    def __init__(self, teacher, light: str):
        if light != "renderer" or getattr(teacher, "kind", None) != "synthetic":
            raise ValueError(
                "loss.imitate needs the synthetic teacher (disentangle.teacher='synthetic') and the"
                f" renderer's light (generator.light='renderer'); this run has teacher"
                f" {getattr(teacher, 'kind', None)!r} and light {light!r}: set loss.imitate to 0"
            )
        self.probe = teacher.probe
        # name -> (factor, column within the factor, index into the probe's mean and std)
        self.columns = {
            name: (factor, i, STARTS[factor] + i)
            for factor in IMITATED
            for i, name in enumerate(FACTOR_NAMES[factor])
            if i in teacher.columns[factor]
        }

    def __call__(self, frames: torch.Tensor, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Frames [N, 3, R, R] and the generator's values (name -> [N], degrees for angles) -> the mean
        squared standardised difference per frame [N], over the values the teacher reads and G has."""
        reading = self.probe(frames.float())
        terms = []
        for name, (factor, column, index) in self.columns.items():
            if name not in values:
                continue
            own = values[name].detach().float().reshape(-1)
            own = own * (math.pi / 180) if name in ANGLE_NAMES else own
            target = (own - self.probe.mean[index]) / self.probe.std[index]
            terms.append((reading[factor][:, column].float() - target).square())
        if not terms:
            raise ValueError(f"the teacher reads none of this generator's values ({', '.join(values)})")
        return torch.stack(terms).mean(0)
