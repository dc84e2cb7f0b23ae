"""docs/leakage_floor.png: the leakage matrix of the synthetic renderer itself, read by the shipped probes.

    python benchmarks/leakage_floor_figure.py [--out docs/leakage_floor.png]

The matrix is the probes' floor as `stylevid train-probes` measured and saved it in the probe file
(metrics/probes/synthetic64.safetensors); nothing is measured anew. The renderer is the floor, so
its leakage is 0 by definition and its raw leakage is the floor's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stylevid.metrics.leakage import plot_leakage
from stylevid.metrics.probes import load_probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "leakage_floor.png")
    args = parser.parse_args()
    floor = load_probes().floor
    if floor is None:
        raise SystemExit("the shipped probes hold no floor: retrain them with `make probes`")
    result = {**floor, "leakage": 0.0, "floor": floor["raw_leakage"]}
    plot_leakage(result, args.out, title="synthetic renderer (ground truth), shipped probes")
    print(f"wrote {args.out}: raw leakage {floor['raw_leakage']:.3f}, control {floor['control']:.2f}")


if __name__ == "__main__":
    main()
