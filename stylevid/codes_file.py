"""Codes on disk: a safetensors file (tensors and JSON, nothing executed), loadable and editable again."""

from __future__ import annotations

from pathlib import Path

import torch

from stylevid import checkpoint
from stylevid.codes import Codes, Keyframes, Trajectory
from stylevid.config import TRAJECTORY_FACTORS, VECTOR_FACTORS

KIND = "stylevid-codes"
_TRAJECTORY_FIELDS = ("z", "anchors", "psi", "frozen_at")


def save_codes(path: str | Path, codes: Codes, metadata: dict | None = None) -> Path:
    """Write codes atomically to a .safetensors file; metadata: JSON (e.g. the generator it belongs to)."""
    codes = codes.to("cpu")
    tensors = {f: {"value": getattr(codes, f)} for f in VECTOR_FACTORS}
    for f in TRAJECTORY_FACTORS:
        tensors[f] = {name: getattr(getattr(codes, f), name) for name in _TRAJECTORY_FIELDS}
        for name, keys in getattr(codes, f).settings.items():  # Codes.with_pose / with_light
            tensors[f] |= {f"set.{name}.times": keys.times, f"set.{name}.values": keys.values}
    spacing = {f: getattr(codes, f).spacing for f in TRAJECTORY_FACTORS}
    return checkpoint.save_checkpoint(path, tensors, {"kind": KIND, "spacing": spacing}, metadata)


def load_codes(path: str | Path, device: str | torch.device = "cpu") -> Codes:
    """Codes written by save_codes (`stylevid invert`'s output)."""
    ckpt = checkpoint.load_checkpoint(path, map_location=device)
    if ckpt.config.get("kind") != KIND:
        raise checkpoint.CheckpointError(
            f"{path} is not a codes file (a stylevid checkpoint of kind {ckpt.config.get('kind')!r});"
            " codes files are what `stylevid invert` and save_codes write"
        )
    spacing = ckpt.config.get("spacing")
    for f in TRAJECTORY_FACTORS:
        value = spacing.get(f) if isinstance(spacing, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise checkpoint.CheckpointError(
                f"{path}: its config's spacing.{f} is {value!r} (spacing {spacing!r}); expected a number of"
                " frames between anchors: the file was damaged or edited by hand, use another copy"
            )
    t = ckpt.tensors
    fields = {f: ("value",) for f in VECTOR_FACTORS} | {f: _TRAJECTORY_FIELDS for f in TRAJECTORY_FACTORS}
    missing = [f"{f}.{name}" for f, names in fields.items() for name in names if name not in t.get(f, {})]
    if missing:
        raise checkpoint.CheckpointError(
            f"{path} is a codes file without the tensors {missing}: it was damaged or edited by hand"
        )
    try:
        trajectories = {
            f: Trajectory(
                t[f]["z"],
                t[f]["anchors"],
                float(spacing[f]),
                t[f]["psi"],
                t[f]["frozen_at"],
                _settings(path, t[f]),
            )
            for f in TRAJECTORY_FACTORS
        }
        return Codes(
            t["identity"]["value"], trajectories["pose"], trajectories["lighting"], t["background"]["value"]
        )
    except ValueError as exc:  # tensors of shapes that do not fit together
        raise checkpoint.CheckpointError(f"{path} holds codes that do not fit together: {exc}") from exc


def _settings(path, tensors: dict) -> dict[str, Keyframes]:
    """The physical values a codes file sets ('set.NAME.times' and 'set.NAME.values')."""
    names = {key.split(".")[1] for key in tensors if key.startswith("set.")}
    out = {}
    for name in sorted(names):
        times, values = tensors.get(f"set.{name}.times"), tensors.get(f"set.{name}.values")
        if times is None or values is None:
            raise checkpoint.CheckpointError(
                f"{path} sets {name} without both its times and values: it was damaged or edited by hand"
            )
        out[name] = Keyframes(times, values)
    return out
