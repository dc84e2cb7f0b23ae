"""The README's main job: synthetic faces -> a synth64 model trained on the CPU -> a report folder.

The report holds a sample sheet, a factor-swap video, training curves, the leakage heatmap and
metrics.json with, for the untrained and the trained generator, `frame_fd16` — the Fréchet distance
between Gaussians fitted to 16x16 RGB thumbnails of real and generated frames (768-D, float64) — and
the leakage read by the shipped factor probes (metrics/leakage.py). frame_fd16 stands in for FVD,
whose I3D embeds 0.3 clips/s on a CPU: far too slow for a demo.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stylevid.api import VideoGenerator
from stylevid.codes import Codes
from stylevid.metrics.faces_found import FACE_SIDE, face_share
from stylevid.metrics.frame_features import MIN_SIDE, feature_fd, vgg_features
from stylevid.metrics.frechet import frechet_distance
from stylevid.metrics.leakage import ProbeReadout, leakage_matrix, plot_leakage
from stylevid.metrics.lpips import LPIPSDistance, load_lpips
from stylevid.training.config import TrainConfig, train_preset
from stylevid.training.run import open_dataset
from stylevid.training.trainer import Trainer
from stylevid.video import save_video

THUMBNAIL = 16
LEAKAGE_VIDEOS = 32  # about 40 s per measurement on 2 cores
FACE_FRAMES = 256  # frames MTCNN looks at, generated and real


def thumbnail_fd(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to thumbnail rows a [N, D] and b [M, D] (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def thumbnails(frames: torch.Tensor) -> np.ndarray:
    """[N, 3, R, R] in [-1, 1] -> [N, 3 * 16 * 16] area-averaged thumbnails."""
    return F.adaptive_avg_pool2d(frames.float(), THUMBNAIL).flatten(1).numpy()


def real_frames(dataset, count: int, seed: int = 0) -> torch.Tensor:
    """`count` frames [count, 3, R, R] from random clips of the dataset."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    while sum(len(x) for x in out) < count:
        out.append(dataset[int(torch.randint(len(dataset), (1,), generator=gen))]["frames"])
    return torch.cat(out)[:count]


def fake_frames(gen: VideoGenerator, count: int, frames_per_video: int = 4, seed: int = 1000) -> torch.Tensor:
    """`count` generated frames [count, 3, R, R], a few per video at spread-out times."""
    videos = -(-count // frames_per_video)
    codes = gen.sample(videos, seed=seed, frames=64)
    times = torch.linspace(0, 60, frames_per_video)
    return gen.render(codes, times).flatten(0, 1)[:count].cpu()


def swap_sheet(gen: VideoGenerator, frames: int = 24) -> torch.Tensor:
    """Factor swaps [8, T, 3, R, R]: row 1 one person in four scenes, row 2 four people in one scene."""
    codes = gen.sample(4, seed=7, frames=frames)
    same_person = codes.with_factor("identity", codes[0])
    same_scene = codes
    for factor in ("pose", "lighting", "background"):
        same_scene = same_scene.with_factor(factor, codes[0])
    return gen.render(Codes.cat([same_person, same_scene]), frames)


@dataclasses.dataclass
class RealReference:
    """The data's frames as the scores compare with them: thumbnails [N, 768] for frame_fd16 and, for
    frame_fd_vgg, VGG features [N, 512] (metrics/frame_features.py) with the network."""

    thumbnails: np.ndarray
    features: np.ndarray | None = None
    vgg: LPIPSDistance | None = None

    @classmethod
    def of(cls, frames: torch.Tensor, vgg: bool = True) -> RealReference:
        """Of real frames [N, 3, R, R] in [-1, 1]; without vgg, or for frames smaller than VGG's
        MIN_SIDE, frame_fd16 only."""
        if not vgg or min(frames.shape[-2:]) < MIN_SIDE:
            return cls(thumbnails(frames))
        model = load_lpips("vgg")
        return cls(thumbnails(frames), vgg_features(frames, model), model)

    def real_vs_real(self) -> dict[str, float]:
        """Each distance between the two halves of the data's frames (every other frame)."""
        out = {"frame_fd16": thumbnail_fd(self.thumbnails[::2], self.thumbnails[1::2])}
        if self.features is not None:
            out["frame_fd_vgg"] = feature_fd(self.features[::2], self.features[1::2])
        return out


def evaluate(
    gen: VideoGenerator, real: RealReference, readout: ProbeReadout, vgg: bool = True, faces: bool = False
) -> tuple[dict, dict]:
    """frame_fd16 (and frame_fd_vgg, when the reference has features and vgg) against the data's
    frames, the leakage read by the evaluation probes and, with faces, the share of FACE_FRAMES of
    the same generated frames in which MTCNN finds a face.

    The probes are the metric's (another seed and shape than any teacher; no loss reads them).
    Returns the scalars {frame_fd16, [frame_fd_vgg,] [faces_found,] leakage (normalised by the probes'
    floor), raw_leakage, control, control_per_factor, interval} and the whole leakage result (matrices).
    """
    fake = fake_frames(gen, len(real.thumbnails))
    scores = {"frame_fd16": thumbnail_fd(real.thumbnails, thumbnails(fake))}
    if vgg and real.features is not None:
        scores["frame_fd_vgg"] = feature_fd(real.features, vgg_features(fake, real.vgg))
    if faces:
        scores["faces_found"] = face_share(fake[:FACE_FRAMES])
    result = leakage_matrix(gen, readout, videos=LEAKAGE_VIDEOS, floor=readout.probe.floor["raw_leakage"])
    keys = ("leakage", "raw_leakage", "control", "control_per_factor", "interval")
    return {**scores, **{key: result[key] for key in keys}}, result


def plot_curves(stats_path: Path, out: Path) -> None:
    """Training curves (every logged loss term against kimg) as a PNG."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    # Records without stats mark events (a resume), not ticks.
    records = [r for line in stats_path.read_text().splitlines() if "stats" in (r := json.loads(line))]
    names = sorted({n for r in records for n in r["stats"] if n.startswith("loss/")})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in names:
        points = [(r["kimg"], r["stats"][name]) for r in records if name in r["stats"]]
        ax = axes[0] if name.startswith(("loss/G_adv", "loss/D_")) else axes[1]
        ax.plot(*zip(*points, strict=True), label=name.removeprefix("loss/"))
    axes[0].set_title("adversarial")
    axes[1].set_title("disentanglement and R1")
    for ax in axes:
        ax.set_xlabel("kimg (thousands of real clips)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def run_demo(
    out: str | Path = "demo",
    videos: int = 192,
    frames: int = 32,
    minutes: float = 12.5,
    workers: int = 0,
    config: TrainConfig | None = None,
    render_workers: int = 2,
    progress: bool = True,
) -> dict:
    """Synthetic data (if missing), synth64 (or `config`) trained `minutes`, report in out/report; metrics.

    workers: loader processes beside training; render_workers: processes rendering the dataset.
    """
    from stylevid.data.synthetic import synthesize  # noqa: PLC0415

    out = Path(out)
    started = time.monotonic()
    data = synthesize(
        out / "synthetic-64.zip",
        videos=videos,
        frames=frames,
        resolution=64,
        seed=0,
        workers=render_workers,
        progress=progress,
    )
    print(f"dataset ready in {time.monotonic() - started:.0f} s: {data}")
    config = copy.deepcopy(config) if config is not None else train_preset("synth64")
    config.kimg = 10_000.0  # the time budget ends the run
    config.tick_kimg, config.snapshot_ticks = 0.04, 50  # points for the curves every 5 steps
    dataset = open_dataset(data, config)
    run = out / "run"
    trainer = Trainer(config, dataset, run, workers=workers)
    readout = ProbeReadout()
    real = RealReference.of(real_frames(dataset, 1024))
    untrained, _ = evaluate(VideoGenerator(trainer.G_ema, config.model), real, readout, vgg=False, faces=True)
    trainer.train(progress=progress, seconds=minutes * 60)
    gen = VideoGenerator(trainer.G_ema, config.model)
    trained, leakage = evaluate(gen, real, readout, faces=True)
    baseline = real.real_vs_real()
    faces = {
        "description": f"share of frames in which MTCNN finds a face (p >= 0.9, upsampled to {FACE_SIDE}²),"
        f" {FACE_FRAMES} generated frames and {FACE_FRAMES} of the data's",
        "untrained": untrained.pop("faces_found"),
        "trained": trained.pop("faces_found"),
        "data": face_share(real_frames(dataset, FACE_FRAMES, seed=1)),
    }
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    codes = gen.sample(8, seed=0, frames=16)
    save_video(gen.render(codes, torch.arange(0, 16, 2.0)), report / "samples.png")
    sheet = swap_sheet(gen)
    save_video(sheet, report / "swap.gif", fps=12, nrow=4)
    save_video(sheet, report / "swap.mp4", fps=12, nrow=4)
    plot_curves(run / "stats.jsonl", report / "curves.png")
    plot_leakage(leakage, report / "leakage.png", title=f"synth64 after {trainer.nimg / 1000:.1f} kimg")
    metrics = {
        "metric": "frame_fd16",
        "description": "Frechet distance of 16x16 thumbnails, 1024 real vs 1024 fake frames; lower is better",
        "untrained": untrained.pop("frame_fd16"),
        "trained": trained.pop("frame_fd16"),
        "real_vs_real": baseline["frame_fd16"],
        "frame_fd_vgg": {
            "description": "Frechet distance of VGG-16 features (relu5_3 means) of 1024 real vs"
            " 1024 fake frames at 64x64 (metrics/frame_features.py); lower is better",
            "trained": trained.pop("frame_fd_vgg", None),
            "real_vs_real": baseline.get("frame_fd_vgg"),
        },
        "leakage": {
            "description": "leakage read by the evaluation probes: (raw_leakage - floor) / (0.75 - floor),"
            " 0 = as separate as the renderer itself, 1 = every latent moves every factor alike;"
            " raw_leakage = 1 - mean diagonal of the share matrix, floor = the renderer's raw leakage",
            "floor": leakage["floor"],
            "untrained": untrained,
            "trained": trained,
            "share": leakage["share"],
            "effect": leakage["effect"],
        },
        "faces_found": faces,
        "kimg": trainer.nimg / 1000,
        "train_minutes": minutes,
        "dataset": str(data),
        "snapshot": json.loads((run / "latest.json").read_text())["snapshot"],
    }
    (report / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    print(f"report in {report} after {(time.monotonic() - started) / 60:.1f} minutes")
    return metrics
