"""How well an encoder inverts: on the generator's samples (codes known) and on frames it never made.

On samples, P people are drawn, each in S clips (same identity code; pose, lighting and background
drawn anew per clip) of K frames at random times; each clip is inverted with its frames fused.

- ``identity_nmse``: sum ||w_hat - w||^2 / sum ||w - mean(w)||^2 over single-frame inversions
  (identity W codes): 0 is exact, 1 is no better than the mean identity.
- ``stability[K]`` (R_K): the mean distance between one person's codes from different clips of K
  frames, divided by the mean distance between different people's mean codes. 0: every clip of a
  person gives the same code.
- ``retrieval_top1``: each person's code from clip 1 looks up the nearest code from clip 0 among all
  P people (Euclidean); the fraction that finds its own person, with K frames per clip.
- ``pose_r2_from_identity`` / ``lighting_r2_from_identity``: R² of a ridge regression (fitted on half
  the people, scored on the others) predicting a frame's true pose (lighting) style from its
  single-frame identity code. About 0 when the identity code holds no pose (lighting).

On frames the generator never made (a dataset's clips, photos):

- ``lpips``: LPIPS-VGG between each frame and its reconstruction (training's loss uses LPIPS-AlexNet).
- ``identity_similarity``: cosine of face embeddings (the result names the network) of frame and
  reconstruction.
- ``tl_id`` / ``tg_id``: STIT's temporal identity scores of a reconstructed video against its source:
  the mean similarity of adjacent (TL) or of all (TG) frame pairs of the reconstruction divided by
  that of the source. 1: the reconstruction is as consistent as the source.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from stylevid.encoder.inversion import encode

SAMPLE_FRAMES = 64


@torch.no_grad()
def sample_people(generator, people: int, clips: int, frames: int, seed: int):
    """Frames [P, S, K, 3, R, R] of P people in S clips each, and their true identity [P, W] and the
    true pose and lighting styles [P, S, K, W]."""
    g = generator.generator
    identity = generator.sample(people, seed=seed, frames=1).identity
    videos, pose, lighting = [], [], []
    rng = torch.Generator().manual_seed(seed)
    for s in range(clips):
        codes = generator.sample(people, seed=seed * 1009 + s + 1, frames=SAMPLE_FRAMES).replace(
            identity=identity
        )
        t = (torch.rand(people, frames, generator=rng) * (SAMPLE_FRAMES - 1)).to(identity.device)
        p = g.trajectory_styles("pose", codes.pose, t)
        light = g.trajectory_styles("lighting", codes.lighting, t)
        videos.append(g.synthesize(identity, p, light, codes.background).clamp(-1, 1))
        pose.append(p)
        lighting.append(light)
    return torch.stack(videos, 1), identity, torch.stack(pose, 1), torch.stack(lighting, 1)


@torch.no_grad()
def _identity_codes(encoder, generator, frames: torch.Tensor, batch: int) -> torch.Tensor:
    """Fused identity codes [M, W] of clips [M, K, 3, R, R], `batch` clips at a time."""
    out = []
    for start in range(0, len(frames), batch):
        styles, _ = encode(
            encoder.encoder, generator.generator, frames[start : start + batch].to(encoder.device)
        )
        out.append(styles.identity.cpu())
    return torch.cat(out)


def stability_ratio(codes: torch.Tensor) -> float:
    """R_K of codes [P, S, W] (S >= 2 clips per person): mean within-person pairwise distance over
    the mean distance between different people's mean codes."""
    p, s = codes.shape[:2]
    pairs = torch.triu_indices(s, s, offset=1)
    within = (codes[:, pairs[0]] - codes[:, pairs[1]]).norm(dim=-1).mean()
    centres = codes.mean(1)
    upper = torch.triu_indices(p, p, offset=1)
    between = torch.cdist(centres, centres)[upper[0], upper[1]].mean()
    return float(within / between)


def retrieval_top1(gallery: torch.Tensor, queries: torch.Tensor) -> float:
    """Fraction of queries [P, W] whose nearest gallery code [P, W] is their own row."""
    nearest = torch.cdist(queries, gallery).argmin(dim=1)
    return float((nearest == torch.arange(len(queries))).float().mean())


def ridge_r2(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> float:
    """Held-out R² (variance-weighted over y's columns) of ridge regression y ~ x, fitted on the first
    half of the rows and scored on the second."""
    half = len(x) // 2
    mx, my = x[:half].mean(0), y[:half].mean(0)
    sx = x[:half].std(0) + 1e-8
    a, b = (x[:half] - mx) / sx, y[:half] - my
    coef = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ b)
    pred = ((x[half:] - mx) / sx) @ coef + my
    sse = ((y[half:] - pred) ** 2).sum()
    sst = ((y[half:] - y[half:].mean(0)) ** 2).sum()
    return float(1 - sse / sst)


def sample_inversion(
    encoder, generator, people: int = 1000, ks=(1, 3, 5), seed: int = 1, batch: int = 50, progress=True
) -> dict[str, Any]:
    """The sample metrics of the module doc, with `people` people in 2 clips of max(ks) frames."""
    k_max = max(ks)
    frames, identity, pose, lighting = sample_people(generator, people, 2, k_max, seed)
    results: dict[str, Any] = {"people": people, "clips": 2}
    stability, retrieval = {}, {}
    codes_k = {}
    bar = tqdm(total=len(ks) * 2, desc="inversion metrics", unit="pass", disable=not progress)
    for k in ks:
        clips = frames[:, :, :k].flatten(0, 1)  # [P * 2, k, ...]
        codes = _identity_codes(encoder, generator, clips, batch).reshape(people, 2, -1)
        codes_k[k] = codes
        stability[k] = stability_ratio(codes)
        retrieval[k] = retrieval_top1(codes[:, 0], codes[:, 1])
        bar.update(2)
    bar.close()
    single = codes_k[1] if 1 in codes_k else codes_k[min(ks)]
    true = identity.cpu()[:, None].expand_as(single).reshape(-1, single.shape[-1])
    predicted = single.reshape(-1, single.shape[-1])
    nmse = float((predicted - true).square().sum() / (true - true.mean(0)).square().sum())
    x = predicted.numpy().astype(np.float64)
    k_first = {"pose": pose[:, :, 0].cpu(), "lighting": lighting[:, :, 0].cpu()}
    r2 = {f: ridge_r2(x, v.reshape(-1, v.shape[-1]).numpy().astype(np.float64)) for f, v in k_first.items()}
    results.update(
        {
            "value": nmse,
            "identity_nmse": nmse,
            "stability": {f"R_{k}": v for k, v in stability.items()},
            "retrieval_top1": {f"K={k}": v for k, v in retrieval.items()},
            "pose_r2_from_identity": r2["pose"],
            "lighting_r2_from_identity": r2["lighting"],
        }
    )
    return results


def temporal_identity(source: torch.Tensor, edited: torch.Tensor) -> dict[str, float]:
    """STIT's TL-ID and TG-ID from unit face embeddings [T, D] of a source video and of its edit."""
    if len(source) < 2 or source.shape != edited.shape:
        raise ValueError(
            "TL-ID/TG-ID need two videos of the same length >= 2,"
            f" got {list(source.shape)} and {list(edited.shape)}"
        )

    def local(e):
        return float((e[:-1] * e[1:]).sum(-1).mean())

    def glob(e):
        t = len(e)
        upper = torch.triu_indices(t, t, offset=1)
        return float((e @ e.T)[upper[0], upper[1]].mean())

    return {"tl_id": local(edited) / local(source), "tg_id": glob(edited) / glob(source)}


@torch.no_grad()
def reconstruction(
    encoder, generator, clips: torch.Tensor, lpips, embedder, optimize: int = 0, distance=None
):
    """Frames the generator never made, clips [M, T, 3, R, R] (ready crops): each clip inverted as a
    video and re-rendered at its frames' times. LPIPS (the `lpips` net given), identity similarity
    (the `embedder`, whole frames), TL-ID and TG-ID, each averaged over the clips."""
    lp, sim, tl, tg, seconds = [], [], [], [], []
    for clip in clips:
        result = encoder.invert_full(
            generator, video=clip, align="none", optimize=optimize, distance=distance
        )
        render = generator.render(result.codes, len(clip))[0].cpu()
        lp.append(lpips(render.to(lpips_device(lpips)), clip.to(lpips_device(lpips))).mean().item())
        a, b = embedder(clip), embedder(render)
        sim.append(float((a * b).sum(-1).mean()))
        scores = temporal_identity(a.double().cpu(), b.double().cpu())
        tl.append(scores["tl_id"])
        tg.append(scores["tg_id"])
        seconds.append(sum(result.seconds.values()))
    return {
        "lpips": float(np.mean(lp)),
        "lpips_net": f"LPIPS-{lpips.net}",
        "identity_similarity": float(np.mean(sim)),
        "face_network": embedder.name,
        "tl_id": float(np.mean(tl)),
        "tg_id": float(np.mean(tg)),
        "clips": len(clips),
        "frames_per_clip": clips.shape[1],
        "seconds_per_clip": float(np.mean(seconds)),
    }


def lpips_device(lpips) -> torch.device:
    return next(lpips.parameters()).device
