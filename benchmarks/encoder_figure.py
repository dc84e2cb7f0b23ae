"""The README's encoder figure (docs/encoder_inversion.png): held-out synthetic frames and their
inversions by the built-in encoder, and a photo animated by its nearest synthetic head.

    python benchmarks/encoder_figure.py [--out docs/encoder_inversion.png]

Rows: 8 frames of synthetic videos the encoder never saw (seed 7); their reconstructions (encoder
alone); the astronaut photo's face crop, then its inversion moved by a sampled motion (frames 0,
8, ..., 48).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

import stylevid
from stylevid.encoder.align import align_images
from stylevid.training.builtin_encoder import EVAL_DATA, held_out_clips
from stylevid.video import make_grid, to_uint8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/encoder_inversion.png"))
    args = parser.parse_args()
    gen, enc = stylevid.load("builtin:synth64"), stylevid.load_encoder("builtin:synth64")
    clips = held_out_clips(EVAL_DATA, gen.resolution)
    frames = clips[:8, 0]
    rebuilt = torch.cat([gen.render(enc.invert(gen, images=[f], align="none"), 1)[:, 0] for f in frames])
    photo = align_images([data.astronaut()], gen.resolution)[0]
    person = enc.invert(gen, images=[data.astronaut()], shared_background=True)
    motion = gen.sample(1, seed=3, frames=64)
    moving = gen.render(person.replace(pose=motion.pose, lighting=motion.lighting), torch.arange(0.0, 49, 8))[
        0
    ]
    rows = torch.cat([frames, rebuilt.clamp(-1, 1), photo[None], moving[:7].clamp(-1, 1)])
    sheet = to_uint8(make_grid(rows, nrow=8)[None])[0]
    Image.fromarray(np.asarray(sheet)).resize((sheet.shape[1] * 2, sheet.shape[0] * 2), Image.NEAREST).save(
        args.out
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
