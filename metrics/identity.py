"""Identity metrics of generated videos, measured with a face embedder (stylevid.metrics.face_embedders).

The embedder is one of the face networks that stylevid.metrics.face_embedders registers (SFace, the
default of ``stylevid metrics``, or a FaceNet). Values from different networks are different scales:
compare like with like. Every result names the network and records the SHA-256 of each file that made
it: the embedder's weights and, when aligning, MTCNN's.

Alignment (``align=True``): MTCNN finds the face in each frame and the embedder aligns it as its network
was trained (FaceEmbedder.align; face_embedders' module doc). Frames where MTCNN finds no face are left
out of every mean, a warning says how many, and the result's ``faces_found`` is the fraction of frames
that had one. ``align=False`` embeds whole frames resized to the network's input: for synthetic frames
that MTCNN cannot read (its smallest face is 20 pixels), and comparable only with other ``align=False``
values.

Definitions. cos is the cosine similarity of two embeddings (1: the network sees the same person).
Video i is video i of ``generator.sample(videos, seed)`` (or of 2 x videos for id_preservation), seen
at `frames` times 0, step, 2 step, ...

- ``id_consistency``: per video, the mean cos over all pairs of its frames with a face; the value is the
  mean over the videos with two such frames or more. Higher: identity holds better over time.
  ``id_consistency_real`` is the same of a dataset's own videos (the first `videos`, read at the same
  times): the value real footage reaches with this network, against which a generator's is read.
- ``id_diversity``: the videos keep their own identity codes but all take pose, lighting and background
  from video 0, so only identity differs. A video's embedding is the normalised mean of its frames';
  the value is the mean cos over all pairs of different videos. Lower: more diverse identities.
- ``id_preservation``: videos A are the first `videos` samples, B the next ones; for each factor f,
  A^f is A with f taken from B. Per factor, the mean cos of frame t of A with frame t of A^f over the
  frames where both have a face; the value is the mean over the factors. Higher: the other factors
  leave identity alone.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stylevid.api import VideoGenerator
from stylevid.codes import Codes
from stylevid.data.files import DatasetFiles
from stylevid.data.index import read_index
from stylevid.data.reader import read_frames
from stylevid.metrics.face_embedders import FaceEmbedder, mtcnn_sha256
from stylevid.video import from_uint8

SWAPPABLE = ("pose", "lighting", "background")
EMBED_BATCH = 64  # faces through the network at a time


class NoFacesError(ValueError):
    """MTCNN found no face in any frame: there is nothing to measure identity on."""


def _times(frames: int, step: int) -> torch.Tensor:
    if frames < 1 or step < 1:
        raise ValueError(f"frames={frames} and step={step} must be at least 1")
    return torch.arange(frames, dtype=torch.float32) * step


def _embed_frames(
    embedder: FaceEmbedder, videos: torch.Tensor, align: bool
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Embeddings [K, D] (float64) of the faces in videos [B, T, 3, H, W] (None: none found), found [B, T]."""
    frames = videos.flatten(0, 1)
    faces, ok = embedder.align(frames) if align else (frames, torch.ones(len(frames), dtype=torch.bool))
    with torch.inference_mode():
        embedded = [
            embedder(faces[i : i + EMBED_BATCH]).double().cpu() for i in range(0, len(faces), EMBED_BATCH)
        ]
    return (torch.cat(embedded) if embedded else None), ok.reshape(videos.shape[:2])


def _gathered(
    parts: list[tuple[torch.Tensor | None, torch.Tensor]], size: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings [N, T, D] (zero where no face) and found [N, T] from _embed_frames of batches of videos."""
    found = torch.cat([ok for _, ok in parts])
    embedded = [e for e, _ in parts if e is not None]
    if not embedded:
        raise NoFacesError(
            f"MTCNN found a face in none of the {found.numel()} frames ({size}); for frames too small or"
            " unlike faces (its smallest face is 20 pixels) pass align=False"
        )
    embeddings = torch.zeros(*found.shape, embedded[0].shape[1], dtype=torch.float64)
    embeddings[found] = torch.cat(embedded)
    return embeddings, found


def _embed_videos(
    generator: VideoGenerator,
    embedder: FaceEmbedder,
    codes: Codes,
    times: torch.Tensor,
    align: bool,
    batch: int,
    bar: tqdm,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings [N, T, D] (float64, zero where no face) of the videos of `codes`, and found [N, T]."""
    parts = []
    for start in range(0, len(codes), batch):
        videos = generator.render(codes[start : start + batch], times)
        parts.append(_embed_frames(embedder, videos, align))
        bar.update(len(videos))
    return _gathered(parts, f"{videos.shape[-2]}x{videos.shape[-1]}")


def _faces_found(found: torch.Tensor, read: torch.Tensor | None = None) -> float:
    """The fraction of frames [...] with a face, of those `read` (default all); warns when some have none."""
    total, count = (found.numel() if read is None else int(read.sum())), int(found.sum())
    if count < total:
        warnings.warn(
            f"MTCNN found no face in {total - count} of {total} frames; they are left out of the value"
            " (faces_found in the result)",
            stacklevel=3,
        )
    return count / total


def _pair_mean(embeddings: torch.Tensor) -> tuple[float, int]:
    """(mean cos over all pairs of different rows, number of pairs) of unit embeddings [K, D]."""
    k = len(embeddings)
    upper = torch.triu_indices(k, k, offset=1)
    return float((embeddings @ embeddings.T)[upper[0], upper[1]].mean()), k * (k - 1) // 2


def _result(metric: str, embedder: FaceEmbedder, align: bool, **values) -> dict[str, Any]:
    sha = {**embedder.weights_sha256, **(mtcnn_sha256() if align else {})}
    return {"metric": metric, **values, "embedder": embedder.name, "align": align, "weights_sha256": sha}


def _consistency(
    embeddings: torch.Tensor, found: torch.Tensor, read: torch.Tensor | None = None
) -> tuple[float, float, int]:
    """(mean over videos of the mean cos between their frames, faces_found, videos used) of [N, T, D]."""
    faces_found = _faces_found(found, read)
    means = [_pair_mean(e[ok])[0] for e, ok in zip(embeddings, found, strict=True) if ok.sum() >= 2]
    if not means:
        raise ValueError(
            f"no video has a face in two frames or more (faces_found={faces_found:.3f}); use more frames"
        )
    return float(np.mean(means)), faces_found, len(means)


def id_consistency(
    generator: VideoGenerator,
    embedder: FaceEmbedder,
    videos: int = 64,
    frames: int = 16,
    step: int = 8,
    seed: int = 0,
    psi: float | Mapping[str, float] = 1.0,
    align: bool = True,
    batch: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Mean cos between the frames of one video (module doc): {value, faces_found, videos_used, ...}."""
    times = _times(frames, step)
    codes = generator.sample(videos, seed, int(times[-1]) + 1, psi)
    with tqdm(total=videos, desc="id_consistency", unit="video", disable=not progress) as bar:
        embeddings, found = _embed_videos(generator, embedder, codes, times, align, batch, bar)
    value, faces_found, used = _consistency(embeddings, found)
    return _result(
        "id_consistency",
        embedder,
        align,
        value=value,
        faces_found=faces_found,
        videos_used=used,
        videos=videos,
        frames=frames,
        step=step,
        seed=seed,
        psi=psi,
    )


def id_consistency_real(
    data: str | os.PathLike,
    embedder: FaceEmbedder,
    videos: int = 64,
    frames: int = 16,
    step: int = 8,
    align: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """id_consistency of a dataset's own videos, the reference a generator's is read against.

    The first `videos` videos (in the dataset's order) are read at frames 0, step, 2 step, ... (at most
    `frames` of them; a shorter video gives the frames it has): the same times id_consistency renders.
    """
    times = _times(frames, step).long().tolist()
    index = read_index(data)
    entries = [entry for entry in index.videos if entry.frames > step][:videos]
    if not entries:
        raise ValueError(f"{data} has no video longer than step={step} frames: use a smaller step")
    files = DatasetFiles(data)
    parts = []
    try:
        for entry in tqdm(entries, desc="id_consistency_real", unit="video", disable=not progress):
            clip = read_frames(files, entry, [t for t in times if t < entry.frames])
            video = from_uint8(clip)
            embedded, ok = _embed_frames(embedder, video[None], align)
            parts.append((embedded, ok))
    finally:
        files.close()
    # Short videos are padded with frames not read (and so without a face); faces_found counts read ones.
    longest = max(ok.shape[1] for _, ok in parts)
    padded = [(e, F.pad(ok, (0, longest - ok.shape[1]))) for e, ok in parts]
    read = torch.stack(
        [F.pad(torch.ones(ok.shape[1], dtype=torch.bool), (0, longest - ok.shape[1])) for _, ok in parts]
    )
    embeddings, found = _gathered(padded, f"{video.shape[-2]}x{video.shape[-1]}")
    value, faces_found, used = _consistency(embeddings, found, read)
    return _result(
        "id_consistency_real",
        embedder,
        align,
        value=value,
        faces_found=faces_found,
        videos_used=used,
        videos=len(entries),
        frames=frames,
        step=step,
        data=str(data),
    )


def id_diversity(
    generator: VideoGenerator,
    embedder: FaceEmbedder,
    videos: int = 64,
    frames: int = 4,
    step: int = 8,
    seed: int = 0,
    psi: float | Mapping[str, float] = 1.0,
    align: bool = True,
    batch: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Mean cos between videos differing only in identity (module doc; lower: more diverse): {value, ...}."""
    if videos < 2:
        raise ValueError(f"videos={videos}: diversity compares videos, so it needs 2 or more")
    times = _times(frames, step)
    codes = generator.sample(videos, seed, int(times[-1]) + 1, psi)
    for factor in SWAPPABLE:
        codes = codes.with_factor(factor, codes[0])
    with tqdm(total=videos, desc="id_diversity", unit="video", disable=not progress) as bar:
        embeddings, found = _embed_videos(generator, embedder, codes, times, align, batch, bar)
    faces_found = _faces_found(found)
    used = found.any(dim=1)
    if used.sum() < 2:
        raise ValueError(f"only {int(used.sum())} video has a face (faces_found={faces_found:.3f}); need 2")
    per_video = F.normalize(embeddings[used].sum(dim=1), dim=1)
    value, pairs = _pair_mean(per_video)
    return _result(
        "id_diversity",
        embedder,
        align,
        value=value,
        faces_found=faces_found,
        videos_used=int(used.sum()),
        pairs=pairs,
        videos=videos,
        frames=frames,
        step=step,
        seed=seed,
        psi=psi,
    )


def id_preservation(
    generator: VideoGenerator,
    embedder: FaceEmbedder,
    videos: int = 64,
    frames: int = 4,
    step: int = 8,
    factors: Sequence[str] = SWAPPABLE,
    seed: int = 0,
    psi: float | Mapping[str, float] = 1.0,
    align: bool = True,
    batch: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Mean cos between a video and the video with one factor swapped (module doc): {value, <factor>, ...}."""
    unknown = [f for f in factors if f not in SWAPPABLE]
    if unknown or not factors:
        raise ValueError(f"factors={list(factors)}: choose one or more of {', '.join(SWAPPABLE)}")
    times = _times(frames, step)
    codes = generator.sample(2 * videos, seed, int(times[-1]) + 1, psi)
    kept, donors = codes[:videos], codes[videos:]
    with tqdm(
        total=videos * (1 + len(factors)), desc="id_preservation", unit="video", disable=not progress
    ) as bar:
        base, base_found = _embed_videos(generator, embedder, kept, times, align, batch, bar)
        swapped = {
            f: _embed_videos(generator, embedder, kept.with_factor(f, donors), times, align, batch, bar)
            for f in factors
        }
    faces_found = _faces_found(torch.stack([base_found, *(ok for _, ok in swapped.values())]))
    parts, pairs = {}, 0
    for factor, (embeddings, found) in swapped.items():
        both = base_found & found
        if not both.any():
            raise ValueError(f"no frame has a face both before and after the {factor} swap; use more frames")
        parts[factor] = float((base[both] * embeddings[both]).sum(dim=1).mean())
        pairs += int(both.sum())
    return _result(
        "id_preservation",
        embedder,
        align,
        value=float(np.mean(list(parts.values()))),
        **parts,
        faces_found=faces_found,
        pairs=pairs,
        videos=videos,
        frames=frames,
        step=step,
        seed=seed,
        psi=psi,
    )
