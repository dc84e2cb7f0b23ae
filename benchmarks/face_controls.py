"""The face layer's controls judged by the evaluation probes (issue 22's "Controls" and its MTCNN score).

    python benchmarks/face_controls.py [--network builtin:synth64] [--data demo/synthetic-64.zip]
        [--videos 64] [--out build/face_controls] [--threads 1]

The judge is the evaluation factor probes (stylevid.metrics.probes, the leakage metric's), never the
generator's own heads or a training teacher. Videos are seeds 0..videos-1 (one video per seed), one
frame each (frame 0). Measured:

1. Pose read-back: `with_pose(yaw=y, pitch=0, roll=0)` for y in YAWS (pitch and roll are set to 0 so
   that the probes' yaw is read on an otherwise frontal head), and `with_pose(yaw=0, pitch=p, roll=0)`
   for p in PITCHES; the probes' angle against the set one: mean absolute error per setting and overall,
   mean bias, and the slope of a least-squares line (1: right scale and sign). Beside it, the same sweep
   of the synthetic renderer's own heads (seeds (seed, i) of its factor sampler): the instrument's error.
2. Yaw spread: the probes' yaw on sampled codes (no settings) against the dataset's frames: standard
   deviation and 5th-95th percentile range; also the dataset's true yaw and the generator's own head's.
3. Relight: `with_light(azimuth=a)` for a in AZIMUTHS, the other light values the code's own. The probes'
   azimuth against a (correlation, MAE, slope), and how far the identity and background readings move
   from those at a = 0: RMS in the probes' standardised units (metrics/leakage.py's distance, over the
   columns the probes read), averaged over videos and a != 0. The floor is the same sweep of the
   renderer's own heads (identity, pose and background held; the light's other values the video's own);
   "new sample" is the distance between two different videos' readings, for scale.
4. Soft alpha: the share of render_layers' alpha pixels in (0.1, 0.9), above 0.9, and the median, with
   the renderer's coverage mask beside it.
5. Faces found: the share of frames in which MTCNN (stylevid.data.faces, probability >= 0.9) finds a
   face, generated and the dataset's, both upsampled bilinearly from 64² to FACE_SIDE²; and their ratio.
6. Figures: a pose sweep (rows: 4 identities, columns: YAWS) and a relighting sweep (columns: AZIMUTHS).
7. Identity into the light: value by value, how far a new identity moves the probes' lighting reading
   relative to a whole new sample (the renderer's heads swapped alike as the floor).
8. Light read: value by value, the correlation over the sampled videos between the light the generator
   drew (its own values) and the probes' reading; the renderer's true values against the probes' reading
   of its heads beside it. A low r means the probes cannot see that value in the generator's frames.
9. Light sweeps: for each of the renderer light's other values (LIGHT_SWEEPS, across the data's range),
   `with_light(value=v)` with the rest the code's own, and the same setting on the renderer's heads; the
   slope of the probes' reading against v for each, and their ratio: how much of a set change the probes
   see in the generator's frames, relative to the renderer's (1: as much).

A generator without the face layer (no controls) gets 2, 4 and 5; the rest is reported not applicable.
Prints Markdown tables, writes face_controls.json and the figures to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

import stylevid
from stylevid.api import VideoGenerator
from stylevid.data import synthetic
from stylevid.data.dataset import VideoClipDataset
from stylevid.metrics.faces_found import FACE_SIDE, face_share
from stylevid.metrics.leakage import ProbeReadout, Readout
from stylevid.metrics.probes import PROBE_RESOLUTION, load_probes
from stylevid.networks.face3d import ANGLE_NAMES, DEPTH_SCALE, RendererLight
from stylevid.training.value_prior import renderer_quantiles
from stylevid.video import from_uint8

YAWS = tuple(range(-40, 41, 10))  # degrees
PITCHES = tuple(range(-20, 21, 10))
AZIMUTHS = tuple(range(-60, 61, 20))
# Three settings of each other light value, across the data's range (factors.MOTION; degrees).
LIGHT_SWEEPS = {
    "elevation": (-10.0, 20.0, 50.0),
    "intensity": (0.7, 1.05, 1.4),
    "ambient": (0.15, 0.3, 0.45),
    "warmth": (-0.8, 0.0, 0.8),
}
SOFT = (0.1, 0.9)  # alpha strictly between these is a blend of face and backdrop
FIGURE_ROWS = 4
RENDERER_SEED = 22  # the renderer's reference heads: seeds (RENDERER_SEED, i), not the dataset's
DATA_SEED = 0

# Physical readings of frames [N, 3, R, R] in [-1, 1]: {factor: [N, D]} in the renderer's units
# (FactorProbe.values; a stand-in in the tests).
Read = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def generator_sweep(
    generator: VideoGenerator, seeds: Sequence[int], name: str, values: Sequence[float], hold: dict
) -> torch.Tensor:
    """Frame 0 [S, N, 3, R, R] of the seeds' videos with control `name` set to each value, `hold` also set."""
    codes = generator.sample_seeds(seeds, frames=1)
    factor = generator.controls[name]["factor"]
    frames = []
    for value in values:
        settings = {**hold, name: float(value)}
        edited = codes.with_pose(**settings) if factor == "pose" else codes.with_light(**settings)
        frames.append(generator.render(edited, 1)[:, 0])
    return torch.stack(frames)


def renderer_sweep(videos: Sequence[synthetic.VideoFactors], name: str, values: Sequence[float], hold: dict):
    """The renderer's frames [S, N, 3, R, R] in [-1, 1] of each video's frame 0 with `name` set to each
    value (degrees for ANGLE_NAMES) and `hold` also set; identity, background and the rest as the video's."""
    factor = _factor_of(name)
    columns = synthetic.FACTOR_NAMES[factor]
    out = []
    for video in videos:
        steps = dataclasses.replace(
            video,
            pose=np.repeat(video.pose[:1], len(values), axis=0),
            lighting=np.repeat(video.lighting[:1], len(values), axis=0),
        )
        rows = getattr(steps, factor)
        for key, value in hold.items():
            rows[:, columns.index(key)] = _renderer_units(key, value)
        rows[:, columns.index(name)] = [_renderer_units(name, v) for v in values]
        out.append(from_uint8(synthetic.render_video(steps, PROBE_RESOLUTION)))
    return torch.stack(out, dim=1)


def renderer_first_frames(videos: Iterable[synthetic.VideoFactors]) -> torch.Tensor:
    """The renderer's first frame of each video, [N, 3, R, R] in [-1, 1] at the probes' resolution."""
    return from_uint8(np.stack([synthetic.render_video(v, PROBE_RESOLUTION)[0] for v in videos]))


def _factor_of(name: str) -> str:
    """The factor a control belongs to: pose or lighting."""
    return "pose" if name in synthetic.FACTOR_NAMES["pose"] else "lighting"


def _renderer_units(name: str, value: float) -> float:
    return math.radians(value) if name in ANGLE_NAMES else float(value)


def renderer_videos(count: int, seed: int = RENDERER_SEED) -> list[synthetic.VideoFactors]:
    """`count` one-frame videos of the renderer's factor sampler, video i from seeds (seed, i)."""
    return [synthetic.sample_factors(np.random.default_rng([seed, i]), frames=1) for i in range(count)]


def read_setting(read: Read, frames: torch.Tensor, name: str) -> np.ndarray:
    """The probes' reading [S, N] of control `name` (degrees if an angle) in sweep frames [S, N, 3, R, R]."""
    factor = _factor_of(name)
    column = synthetic.FACTOR_NAMES[factor].index(name)
    with torch.no_grad():
        values = read(frames.flatten(0, 1))[factor][:, column].double().numpy()
    values = np.degrees(values) if name in ANGLE_NAMES else values
    return values.reshape(frames.shape[:2])


def readback(settings: Sequence[float], readings: np.ndarray) -> dict:
    """Readings [S, N] of settings [S]: MAE and bias per setting and overall, slope and correlation."""
    settings = np.asarray(settings, dtype=np.float64)
    readings = np.asarray(readings, dtype=np.float64)
    if readings.ndim != 2 or len(readings) != len(settings):
        raise ValueError(f"readings of shape {list(readings.shape)} must be [S={len(settings)}, N]")
    error = readings - settings[:, None]
    flat_set = np.repeat(settings, readings.shape[1])
    slope = np.polyfit(flat_set, readings.ravel(), 1)[0] if len(settings) > 1 else math.nan
    spread = readings.ravel().std() > 0 and flat_set.std() > 0
    return {
        "per_setting": [
            {
                "set": float(s),
                "mean_read": float(r.mean()),
                "mae": float(np.abs(e).mean()),
                "bias": float(e.mean()),
            }
            for s, r, e in zip(settings, readings, error, strict=True)
        ],
        "mae": float(np.abs(error).mean()),
        "bias": float(error.mean()),
        "slope": float(slope),
        "correlation": float(np.corrcoef(flat_set, readings.ravel())[0, 1]) if spread else math.nan,
    }


def spread(values: np.ndarray) -> dict:
    """Standard deviation and the 5th, 95th percentiles of values [N], and the range between them."""
    values = np.asarray(values, dtype=np.float64).ravel()
    p5, p95 = np.percentile(values, [5, 95])
    return {"std": float(values.std()), "p5": float(p5), "p95": float(p95), "range": float(p95 - p5)}


def coverage(generated: dict, data: dict) -> dict:
    """How a generated spread compares with the data's (spread dicts): ratios, and whether it covers it."""
    return {
        "std_ratio": generated["std"] / data["std"],
        "range_ratio": generated["range"] / data["range"],
        "covers": generated["p5"] <= data["p5"] and generated["p95"] >= data["p95"],
    }


def movement(readout: Readout, frames: torch.Tensor, reference: int, factors: Sequence[str]) -> dict:
    """Per factor, the mean readout distance of sweep frames [S, N, ...] from the frames of setting
    `reference`, over videos and the other settings; and 'new_sample': that between different videos
    (video i against i + 1 at the reference setting), the scale of a whole change; and their ratio."""
    steps, videos = frames.shape[:2]
    readings = readout(frames.flatten(0, 1))
    out = {}
    for factor in factors:
        value = readings[factor].reshape(steps, videos, -1)
        base = value[reference]
        moved = [readout.distance(factor, base, value[s]) for s in range(steps) if s != reference]
        new = readout.distance(factor, base, base.roll(1, dims=0)) if videos > 1 else torch.tensor([math.nan])
        moved, new = float(torch.cat(moved).nanmean()), float(new.nanmean())
        out[factor] = {"moved": moved, "new_sample": new, "relative": moved / new}
    return out


def alpha_shares(alpha: torch.Tensor) -> dict:
    """Of alpha values in [0, 1] (any shape): the share in SOFT, the share above SOFT[1], the median."""
    alpha = alpha.detach().float().flatten()
    low, high = SOFT
    return {
        "soft": float(((alpha > low) & (alpha < high)).float().mean()),
        "opaque": float((alpha > high).float().mean()),
        "median": float(alpha.median()),
    }


def data_frames(path: str | Path, count: int) -> tuple[torch.Tensor, np.ndarray]:
    """`count` frames [count, 3, R, R] of the dataset, one per video spread over it (unflipped), and their
    true yaw in degrees [count]."""
    dataset = VideoClipDataset(path, frames_per_clip=1, flip=False, seed=DATA_SEED)
    picks = np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    items = [dataset.item(int(picks[i % len(picks)]), i // len(picks)) for i in range(count)]
    if "factors" not in items[0]:
        raise ValueError(f"{path} holds no ground-truth factors: give the synthetic dataset (stylevid synth)")
    yaw = np.degrees([float(item["factors"]["pose"][0, 0]) for item in items])
    return torch.cat([item["frames"] for item in items]), yaw


def sweep_figure(frames: torch.Tensor, labels: Sequence[str], title: str, path: Path) -> Path:
    """A grid PNG at `path`: rows the videos, columns the settings of sweep frames [S, N, 3, R, R]."""
    import matplotlib  # noqa: PLC0415 - plotting only here

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # noqa: PLC0415

    steps, rows = frames.shape[:2]
    figure, axes = plt.subplots(rows, steps, figsize=(1.1 * steps, 1.1 * rows + 0.5), dpi=110, squeeze=False)
    for s in range(steps):
        for r in range(rows):
            ax = axes[r, s]
            ax.imshow(((frames[s, r].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(labels[s], fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def measure(generator: VideoGenerator, data: Path, videos: int, out: Path) -> dict:
    """Every measurement of the module doc for one generator; figures into `out`; the results as a dict."""
    probe = load_probes()
    readout = ProbeReadout(probe)
    seeds = list(range(videos))
    codes = generator.sample_seeds(seeds, frames=1)
    layers = generator.render_layers(codes, 1)
    generated = layers["frames"][:, 0].clamp(-1, 1)
    real, true_yaw = data_frames(data, videos)
    reference = renderer_videos(videos)
    rendered, masks = zip(
        *(synthetic.render_video(v, PROBE_RESOLUTION, return_mask=True) for v in reference), strict=True
    )

    gen_yaw, data_yaw = (read_setting(probe.values, x[None], "yaw")[0] for x in (generated, real))
    result = {
        "videos": videos,
        "controls": bool(generator.controls),
        "yaw_spread": {
            "generated": spread(gen_yaw),
            "data": spread(data_yaw),
            "data_truth": spread(true_yaw),
            "coverage": coverage(spread(gen_yaw), spread(data_yaw)),
        },
        "alpha": {
            "generated": alpha_shares(layers["alpha"]),
            "renderer": alpha_shares(torch.from_numpy(np.stack(masks))),
        },
    }
    if generator.controls:
        result["yaw_spread"]["generator_head"] = spread(generator.pose_angles(codes, 1)["yaw"].numpy())
    faces = {"generated": face_share(generated), "data": face_share(real)}
    faces["ratio"] = faces["generated"] / faces["data"] if faces["data"] else math.nan
    result["faces"] = {**faces, "side": FACE_SIDE}
    if not generator.controls:
        result["not_applicable"] = (
            "pose read-back, relight and sweep figures: the generator has no face layer"
        )
        return result

    result.update(pose_readbacks(generator, probe.values, seeds, reference, out))
    result["relight"] = relight(generator, probe, readout, seeds, reference, out)
    heads = from_uint8(np.stack([frames[0] for frames in rendered]))
    result["identity_lighting"] = identity_lighting(generator, probe.values, seeds, reference, heads)
    own = generator.light_values(codes, 1)
    result["light_read"] = {
        "generated": light_read({k: v[:, 0].numpy() for k, v in own.items()}, probe.values(generated)),
        "renderer": light_read(
            dict(zip(RendererLight.names, np.stack([v.lighting[0] for v in reference], 1), strict=True)),
            probe.values(heads),
        ),
    }
    result["light_sweeps"] = light_sweeps(generator, probe.values, seeds, reference)
    result["figures"] = [str(out / "pose_sweep.png"), str(out / "relight_sweep.png")]
    result["diagnostics"] = {
        "head_share": float(layers["canonical"]["head_alpha"].mean()),
        "values": head_values(generator),
        "sunk": sunk_depth(generator),
    }
    return result


def sunk_depth(generator: VideoGenerator, seeds=range(64)) -> float:
    """How far the heads' canonical depth lies below the dome they start from, averaged over the head's
    core (half frame widths; the learned residual is bounded by face3d.DEPTH_SCALE): a sunk face moves
    its features less when it turns."""
    g = generator.generator
    codes = generator.sample_seeds(seeds, frames=16)
    with torch.no_grad():
        depth = g.face.canonical(g.foreground_synthesis(codes.identity))["head_depth"][:, 0]
    core = g.face.places[0, 0].bool()
    return float((g.face.dome[0, 0] - depth)[:, core].mean())


HEAD_VALUE_VIDEOS = 256  # the heads' values vary mostly between videos: 64 videos gave a yaw std 3° off


def head_values(generator: VideoGenerator, seeds=range(HEAD_VALUE_VIDEOS)) -> dict:
    """Mean and std of each pose and light value the generator's heads give over videos of `seeds` (8 times
    each over 64 frames; no frame is drawn), beside the synthetic renderer's (training/value_prior.py) for
    the renderer's light."""
    codes = generator.sample_seeds(seeds, frames=64)
    t = torch.arange(0, 64, 8).float()
    values = {**generator.pose_angles(codes, t), **generator.light_values(codes, t)}
    data = renderer_quantiles() if isinstance(generator.generator.face.light, RendererLight) else {}
    out = {}
    for name, v in values.items():
        out[name] = {"mean": float(v.mean()), "std": float(v.std())}
        if name in data:
            out[name].update(data_mean=float(data[name].mean()), data_std=float(data[name].std()))
    return out


def pose_readbacks(generator, read: Read, seeds, reference, out: Path) -> dict:
    """Yaw and pitch read-back of the generator and the renderer (the others at 0); the pose sweep figure."""
    result = {}
    for name, values in (("yaw", YAWS), ("pitch", PITCHES)):
        hold = {key: 0.0 for key in ("yaw", "pitch", "roll") if key != name}
        sweep = generator_sweep(generator, seeds, name, values, hold)
        truth = renderer_sweep(reference, name, values, hold)
        result[f"{name}_readback"] = {
            "hold": hold,
            "generated": readback(values, read_setting(read, sweep, name)),
            "renderer": readback(values, read_setting(read, truth, name)),
            "pixel_change": {"generated": pixel_change(sweep), "renderer": pixel_change(truth)},
        }
        if name == "yaw":
            labels = [f"yaw {v:+d}°" for v in values]
            title = "with_pose(yaw=…, pitch=0, roll=0)"
            sweep_figure(sweep[:, :FIGURE_ROWS], labels, title, out / "pose_sweep.png")
    return result


def relight(generator, probe, readout: Readout, seeds, reference, out: Path) -> dict:
    """Azimuth read-back and identity/background movement of the generator against the renderer's floor;
    the relighting sweep figure."""
    sweep = generator_sweep(generator, seeds, "azimuth", AZIMUTHS, {})
    truth = renderer_sweep(reference, "azimuth", AZIMUTHS, {})
    rest = AZIMUTHS.index(0)
    labels = [f"light {v:+d}°" for v in AZIMUTHS]
    sweep_figure(sweep[:, :FIGURE_ROWS], labels, "with_light(azimuth=…)", out / "relight_sweep.png")
    # The probes' own floor (metrics/probes.py leakage_floor): how far identity and background move,
    # relative to a new sample, when the renderer changes its whole light; for scale beside `relative`.
    stored = {f: probe.floor["effect"][2][i] for i, f in ((0, "identity"), (3, "background"))}
    return {
        "generated": readback(AZIMUTHS, read_setting(probe.values, sweep, "azimuth")),
        "renderer": readback(AZIMUTHS, read_setting(probe.values, truth, "azimuth")),
        "moved": movement(readout, sweep, rest, ("identity", "background")),
        "floor": movement(readout, truth, rest, ("identity", "background")),
        "stored_floor_effect": stored if probe.floor else None,
        "pixel_change": {"generated": pixel_change(sweep), "renderer": pixel_change(truth)},
    }


def value_moves(read: Read, factor: str, base, moved, new) -> dict:
    """Per value of `factor`, the RMS over videos of how far the reading of frames `moved` lies from that
    of `base`, over how far a whole new sample's (`new`) lies: 0 = unmoved, 1 = as far as a new sample."""
    with torch.no_grad():
        values = [read(frames)[factor].double() for frames in (base, moved, new)]
    rms = [(v - values[0]).square().mean(0).sqrt() for v in values[1:]]
    names = synthetic.FACTOR_NAMES[factor]
    return {name: float(m / n) for name, m, n in zip(names, *rms, strict=True)}


def identity_lighting(generator, read: Read, seeds, reference, heads: torch.Tensor | None = None) -> dict:
    """Value by value, how far a new identity moves the probes' lighting reading relative to a whole new
    sample (video i with video i + 1's identity, against all of video i + 1), for the generator and for
    the renderer's own heads (the floor): which of the light's values identity leaks into. `heads`: the
    reference videos' first frames in [-1, 1] where the caller has rendered them already."""
    seeds = list(seeds)
    codes = generator.sample_seeds(seeds, frames=1)
    swapped = codes.with_factor("identity", generator.sample_seeds(seeds[1:] + seeds[:1], frames=1))
    base, moved = (generator.render(c, 1)[:, 0].clamp(-1, 1) for c in (codes, swapped))
    heads = renderer_first_frames(reference) if heads is None else heads
    heads_moved = renderer_first_frames(
        dataclasses.replace(v, identity=w.identity)
        for v, w in zip(reference, reference[1:] + reference[:1], strict=True)
    )
    # Video i + 1 is the new sample: its frames are the base's, one place on.
    return {
        "generated": value_moves(read, "lighting", base, moved, base.roll(-1, dims=0)),
        "renderer": value_moves(read, "lighting", heads, heads_moved, heads.roll(-1, dims=0)),
    }


def light_read(values: dict[str, np.ndarray], readings: dict[str, torch.Tensor]) -> dict[str, float]:
    """Value by value, the Pearson correlation over videos between the light's own values (name -> [N]) and
    the probes' lighting reading of the frames (columns in RendererLight's order): whether the probes can
    read the light a generator draws at all (on the renderer's heads, with its true values, they read every
    one). Values the probes do not read (a spherical-harmonics light's strength and extras) are left out."""
    reading = readings["lighting"].double().numpy()
    names = RendererLight.names
    return {
        name: float(np.corrcoef(value, reading[:, names.index(name)])[0, 1])
        for name, value in values.items()
        if name in names
    }


def light_sweeps(generator, read: Read, seeds, reference) -> dict:
    """Per value of LIGHT_SWEEPS the generator's controls have: the probes' read-back of the set value on
    the generator's frames and on the renderer's heads, and the ratio of their slopes."""
    out = {}
    for name, values in LIGHT_SWEEPS.items():
        if name not in generator.controls:
            continue
        sweeps = {
            "generated": generator_sweep(generator, seeds, name, values, {}),
            "renderer": renderer_sweep(reference, name, values, {}),
        }
        out[name] = {key: readback(values, read_setting(read, x, name)) for key, x in sweeps.items()}
        out[name]["slope_ratio"] = out[name]["generated"]["slope"] / out[name]["renderer"]["slope"]
    return out


def pixel_change(frames: torch.Tensor) -> float:
    """Mean absolute difference (in [-1, 1] units) between the first and last setting of sweep frames
    [S, N, 3, R, R]: whether the control moves pixels at all, whatever the probes read."""
    return float((frames[-1] - frames[0]).abs().mean())


def tables(result: dict) -> str:
    """The results as Markdown tables."""
    lines = [f"## {result['network']} ({result['videos']} videos)", ""]
    s = result["yaw_spread"]
    lines += ["| yaw read by the probes (°) | std | p5 | p95 | p5-p95 range |", "|---|---|---|---|---|"]
    for key in ("generated", "data", "data_truth", "generator_head"):
        if key in s:
            v = s[key]
            lines.append(f"| {key} | {v['std']:.1f} | {v['p5']:.1f} | {v['p95']:.1f} | {v['range']:.1f} |")
    c = s["coverage"]
    lines += [
        "",
        f"generated/data: std {c['std_ratio']:.2f}, range {c['range_ratio']:.2f}, covers: {c['covers']}",
        "",
    ]
    a = result["alpha"]
    lines += ["| alpha | 0.1<a<0.9 | a>0.9 | median |", "|---|---|---|---|"]
    for key, v in a.items():
        lines.append(f"| {key} | {v['soft']:.3f} | {v['opaque']:.3f} | {v['median']:.3f} |")
    f = result["faces"]
    lines += [
        "",
        f"MTCNN face found (p>=0.9, {f['side']}² bilinear): generated {f['generated']:.3f},"
        f" data {f['data']:.3f}, ratio {f['ratio']:.2f} (target >= 0.8)",
        "",
    ]
    if not result["controls"]:
        return "\n".join([*lines, f"Not applicable: {result['not_applicable']}"])
    for name in ("yaw", "pitch"):
        r = result[f"{name}_readback"]
        hold = ", ".join(f"{k}=0" for k in r["hold"])
        lines += [f"{name} read-back (with_pose({name}=x, {hold}))", ""]
        lines += [
            "| set (°) | generated mean read | MAE | renderer mean read | MAE |",
            "|---|---|---|---|---|",
        ]
        for g, t in zip(r["generated"]["per_setting"], r["renderer"]["per_setting"], strict=True):
            lines.append(
                f"| {g['set']:+.0f} | {g['mean_read']:+.1f} | {g['mae']:.1f} |"
                f" {t['mean_read']:+.1f} | {t['mae']:.1f} |"
            )
        for key in ("generated", "renderer"):
            v = r[key]
            lines.append(
                f"| **{key}** overall | bias {v['bias']:+.1f} | **{v['mae']:.1f}** |"
                f" slope {v['slope']:.2f} | r {v['correlation']:.3f} |"
            )
        lines.append("")
    r = result["relight"]
    lines += [
        "relight (with_light(azimuth=a))",
        "",
        "| | azimuth r | MAE (°) | slope | bias |",
        "|---|---|---|---|---|",
    ]
    for key in ("generated", "renderer"):
        v = r[key]
        lines.append(
            f"| {key} | {v['correlation']:.3f} | {v['mae']:.1f} | {v['slope']:.2f} | {v['bias']:+.1f} |"
        )
    lines += [
        "",
        "| reading moved by the light (RMS, std units) | generated | renderer floor | ratio |"
        " generated ÷ new sample | renderer ÷ new sample | probes' stored floor effect |",
        "|---|---|---|---|---|---|---|",
    ]
    stored = r["stored_floor_effect"] or {}
    for factor in ("identity", "background"):
        g, t = r["moved"][factor], r["floor"][factor]
        lines.append(
            f"| {factor} | {g['moved']:.3f} | {t['moved']:.3f} | {g['moved'] / t['moved']:.2f} |"
            f" {g['relative']:.3f} | {t['relative']:.3f} | {stored.get(factor, math.nan):.3f} |"
        )
    leak = result["identity_lighting"]
    lines += [
        "",
        "| a new identity moves the lighting reading (÷ a new sample) | "
        + " | ".join(leak["generated"])
        + " |",
        "|---|" + "---|" * len(leak["generated"]),
    ]
    for key in ("generated", "renderer"):
        lines.append(f"| {key} | " + " | ".join(f"{v:.2f}" for v in leak[key].values()) + " |")
    read = result["light_read"]
    lines += [
        "",
        "| the probes read the light's own values (correlation r) | " + " | ".join(read["generated"]) + " |",
        "|---|" + "---|" * len(read["generated"]),
    ]
    for key in ("generated", "renderer"):
        lines.append(f"| {key} | " + " | ".join(f"{v:.2f}" for v in read[key].values()) + " |")
    sweeps = result["light_sweeps"]
    lines += [
        "",
        "| with_light(value=v): the probes' slope | " + " | ".join(sweeps) + " |",
        "|---|" + "---|" * len(sweeps),
    ]
    for key in ("generated", "renderer"):
        lines.append(f"| {key} | " + " | ".join(f"{v[key]['slope']:.2f}" for v in sweeps.values()) + " |")
    lines.append("| ratio | " + " | ".join(f"**{v['slope_ratio']:.2f}**" for v in sweeps.values()) + " |")
    changes = {key: result[f"{key}_readback"]["pixel_change"] for key in ("yaw", "pitch")}
    changes["azimuth"] = r["pixel_change"]
    lines += [
        "",
        "Diagnostics, not the judge: mean |first - last frame| of each sweep (pixels in [-1, 1]) "
        + ", ".join(f"{k} {v['generated']:.3f} (renderer {v['renderer']:.3f})" for k, v in changes.items())
        + f"; the canonical head silhouette covers {result['diagnostics']['head_share']:.3f} of the frame"
        + f"; the face lies {result['diagnostics']['sunk']:.3f} below the dome (bound {DEPTH_SCALE})",
        "",
        "The heads' values (mean ± std; the renderer's in brackets): "
        + ", ".join(
            f"{k} {v['mean']:.2f} ± {v['std']:.2f}"
            + (f" ({v['data_mean']:.2f} ± {v['data_std']:.2f})" if "data_mean" in v else "")
            for k, v in result["diagnostics"]["values"].items()
        ),
    ]
    lines += ["", "figures: " + ", ".join(result["figures"])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="builtin:synth64", help="a checkpoint or builtin:NAME")
    parser.add_argument(
        "--data", type=Path, default=Path("demo/synthetic-64.zip"), help="the synthetic dataset"
    )
    parser.add_argument("--videos", type=int, default=64, help="videos (seeds 0..videos-1), one frame each")
    parser.add_argument(
        "--out", type=Path, default=Path("build/face_controls"), help="folder for JSON and figures"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the cores are often shared)")
    args = parser.parse_args()
    if args.videos < FIGURE_ROWS:
        parser.error(f"--videos {args.videos}: need at least {FIGURE_ROWS} (the figures' rows)")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result = {
        "network": args.network,
        **measure(stylevid.load(args.network), args.data, args.videos, args.out),
    }
    result["seconds"] = round(time.monotonic() - started)
    (args.out / "face_controls.json").write_text(json.dumps(result, indent=2) + "\n")
    print(tables(result))
    print(f"\nwrote {args.out / 'face_controls.json'} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
