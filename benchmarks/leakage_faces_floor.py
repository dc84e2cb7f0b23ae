"""The floor of leakage_faces: the face readout's raw leakage on the synthetic renderer, by pose reading.

    python benchmarks/leakage_faces_floor.py [--videos 24] [--resolution 128] [--face-net sface]

The renderer (metrics.probes.GroundTruthGenerator) is disentangled by construction, so whatever
leakage the face readout measures on it is the readout's own confusion: what a perfect generator
would score with leakage_faces. Printed for the readout's two pose readings (FaceMesh, MTCNN's five
points), side by side on the same videos: raw leakage, control and the diagonal of `share` per factor.
"""

from __future__ import annotations

import argparse
import time

from stylevid.config import FACTORS
from stylevid.metrics.face_embedders import load_face_embedder
from stylevid.metrics.face_readout import POSE_READINGS, FaceReadout
from stylevid.metrics.leakage import leakage_matrix
from stylevid.metrics.probes import GroundTruthGenerator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--face-net", default="sface")
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    started = time.monotonic()
    embedder = load_face_embedder(weights=args.face_net)
    renderer = GroundTruthGenerator(args.resolution)
    print(f"the renderer at {args.resolution}², {args.videos} videos x 4 frames, identity by {args.face_net}")
    print(
        f"{'pose reading':<14}{'raw leakage':>12}{'control':>9}"
        + "".join(f"{f:>12}" for f in FACTORS)
        + "  measured"
    )
    for pose in POSE_READINGS:
        readout = FaceReadout(embedder, pose=pose)
        result = leakage_matrix(
            renderer, readout, videos=args.videos, frames=4, step=10, seed=args.seed, progress=False
        )
        diagonal = [result["share"][i][i] for i in range(len(FACTORS))]
        print(
            f"{pose:<14}{result['raw_leakage']:>12.3f}{result['control']:>9.3f}"
            + "".join(f"{v:>12.3f}" for v in diagonal)
            + f"  {min(result['measured']):.2f}"
        )
    print(
        f"({time.monotonic() - started:.0f} s; share diagonal: the part of a factor's change read on itself)"
    )


if __name__ == "__main__":
    main()
