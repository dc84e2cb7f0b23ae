"""Head pose from FaceMesh against MTCNN's five points, on synthetic heads of known pose.

    python benchmarks/facemesh_pose.py [--count 200] [--resolution 192] [--seed 11] [--calibration-seed 12]

Each of `--count` synthetic heads (identity, background, lighting and pose drawn by the dataset's own
factor sampler, one frame per head, seeds (seed, i)) is rendered and read both ways wherever MTCNN finds
its face: FaceMesh's angles (stylevid.metrics.facemesh; its reference mesh comes from frontal heads of
seed 7001, neither of the seeds here), and MTCNN's pose features (stylevid.metrics.face_readout
.pose_features: roll in radians, yaw and pitch as offsets), which are not angles. The five-point
features, and FaceMesh's angles a second time, are mapped to angles by a linear least-squares fit (with
an intercept) on `--count` other heads of `--calibration-seed`. Printed: mean absolute error in
degrees of yaw, pitch and roll, over the heads every method read.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from stylevid.data.faces import largest_faces
from stylevid.data.synthetic import render_frame, sample_factors
from stylevid.metrics.face_readout import pose_features
from stylevid.metrics.facemesh import MIN_SCORE, crop_rois, load_facemesh


def read_heads(mesh, count: int, resolution: int, seed: int) -> dict[str, np.ndarray]:
    """Of the heads MTCNN finds: truth [K, 3] (yaw, pitch, roll), FaceMesh angles and score, 5-point features.

    Also `missed`: the true poses [J, 3] of the heads MTCNN does not find.
    """
    truth, angles, scores, points, missed = [], [], [], [], []
    for i in range(count):
        factors = sample_factors(np.random.default_rng([seed, i]), 1)
        frame = render_frame(
            factors.identity, factors.pose[0], factors.lighting[0], factors.background, resolution
        )
        (found,) = largest_faces(frame[None])
        if found is None:
            missed.append(factors.pose[0])
            continue
        with torch.no_grad():
            angle, score = mesh.pose(crop_rois(frame, found[0][None]))
        truth.append(factors.pose[0])
        angles.append(angle[0].numpy())
        scores.append(score.item())
        points.append(pose_features(found[1]))
    return {
        "truth": np.array(truth),
        "facemesh": np.array(angles),
        "score": np.array(scores),
        "points": np.array(points),
        "missed": np.array(missed).reshape(-1, 3),
    }


def linear_map(features: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Least-squares weights [D + 1, 3] from features [K, D] (and a constant) to the angles [K, 3]."""
    design = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    weights, *_ = np.linalg.lstsq(design, truth, rcond=None)
    return weights


def apply(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    return np.concatenate([features, np.ones((len(features), 1))], axis=1) @ weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--resolution", type=int, default=192)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--calibration-seed", type=int, default=12)
    args = parser.parse_args()
    start = time.perf_counter()
    mesh = load_facemesh()
    test = read_heads(mesh, args.count, args.resolution, args.seed)
    calibration = read_heads(mesh, args.count, args.resolution, args.calibration_seed)
    confident = test["score"] >= MIN_SCORE
    print(
        f"{args.count} heads at {args.resolution}x{args.resolution}: MTCNN found {len(test['truth'])}"
        f" (calibration: {len(calibration['truth'])}); FaceMesh score >= {MIN_SCORE} on {confident.sum()}"
        f" (median score {np.median(test['score']):.3f})"
    )
    for name, part in (("found", test["truth"]), ("missed", test["missed"])):
        mean = ", ".join(f"{np.degrees(v):.1f}" for v in np.abs(part).mean(axis=0))
        print(f"  mean |yaw|, |pitch|, |roll| of the heads MTCNN {name}: {mean} degrees")
    truth = test["truth"][confident]
    methods = {
        "FaceMesh (rigid fit, no calibration)": test["facemesh"],
        "FaceMesh + linear calibration": apply(
            linear_map(calibration["facemesh"], calibration["truth"]), test["facemesh"]
        ),
        "5 points + linear calibration": apply(
            linear_map(calibration["points"], calibration["truth"]), test["points"]
        ),
    }
    print(f"\nmean absolute error, degrees ({len(truth)} heads)")
    print(f"{'method':40s} {'yaw':>7s} {'pitch':>7s} {'roll':>7s}")
    for name, estimate in methods.items():
        error = np.degrees(np.abs(estimate[confident] - truth).mean(axis=0))
        print(f"{name:40s} " + " ".join(f"{e:7.2f}" for e in error))
    spread = np.degrees(np.abs(truth - truth.mean(axis=0)).mean(axis=0))
    print(f"{'(guessing the mean pose)':40s} " + " ".join(f"{e:7.2f}" for e in spread))
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
