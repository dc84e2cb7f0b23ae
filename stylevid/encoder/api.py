"""The encoder for users: `load_encoder`, `VideoEncoder.invert(generator, images=... | video=...)`.

An encoder belongs to one generator, named in its config by the SHA-256 of the generator's weights;
inverting with another generator is refused (train-encoder makes one for it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from stylevid import builtin, checkpoint
from stylevid.codes import Codes
from stylevid.encoder.align import align_images, align_video
from stylevid.encoder.config import EncoderConfig
from stylevid.encoder.inversion import Distance, Inversion, encode, optimize_codes, styles_to_codes
from stylevid.encoder.model import Encoder

MODULE = "encoder"


class VideoEncoder:
    """An encoder for inference; `invert` returns Codes the Codes API edits and VideoGenerator renders."""

    def __init__(self, encoder: Encoder, metadata: dict | None = None):
        self.encoder = encoder.eval().requires_grad_(False)
        self.metadata = dict(metadata or {})

    @property
    def config(self) -> EncoderConfig:
        return self.encoder.config

    @property
    def device(self) -> torch.device:
        return self.encoder.w_mean.device

    def to(self, device) -> VideoEncoder:
        self.encoder.to(device)
        return self

    def check_generator(self, generator) -> None:
        """Refuse a generator other than the one this encoder was trained for."""
        expected = self.config.generator_sha256
        if expected and generator.sha256 != expected:
            raise ValueError(
                f"this encoder was trained for the generator {self.config.generator or '?'} (weights SHA-256"
                f" {expected[:12]}...), not this one ({generator.sha256[:12]}...): its codes would not fit."
                " Train an encoder for this generator with `stylevid train-encoder --network G`"
            )

    def invert(self, generator, images: Sequence | None = None, video=None, **options) -> Codes:
        """Codes of reference images (paths, PIL images, uint8 arrays, [3, H, W] tensors) or of a video
        (a path, uint8 [T, H, W, 3] or [T, 3, H, W] in [-1, 1]); see `inversion` for what the rows
        hold, and invert_full for the options (align: 'face' crops as `stylevid prepare` does, 'none'
        takes ready crops; iterations; optimize steps within seconds; distance; shared_background)."""
        return self.invert_full(generator, images, video, **options).codes

    @torch.no_grad()
    def invert_full(
        self,
        generator,
        images: Sequence | None = None,
        video=None,
        align: str = "face",
        iterations: int | None = None,
        optimize: int = 0,
        seconds: float | None = None,
        distance: Distance | None = None,
        shared_background: bool | None = None,
        progress: bool = False,
    ) -> Inversion:
        """As invert, with the styles, fusion weights, trajectory residuals and timings; progress: bars
        of the face search, the trajectory fits and the optimisation on stderr."""
        if (images is None) == (video is None):
            raise ValueError("pass either images=[...] or video=..., not both and not neither")
        if optimize < 0:
            raise ValueError(f"optimize={optimize} must be 0 (off) or a number of steps")
        self.check_generator(generator)
        started = time.monotonic()
        r = self.config.resolution
        if images is not None:
            frames = align_images(images, r, align, progress=progress)[None]
            times = None
            shared = False if shared_background is None else shared_background
        else:
            frames = self._video_frames(video, align, progress)[None]
            times = torch.arange(frames.shape[1], dtype=torch.float32)[None]
            shared = True
        device = self.device
        frames = frames.to(device)
        G = generator.generator
        styles, weights = encode(self.encoder, G, frames, shared, iterations)
        k = frames.shape[1]
        codes, residual = styles_to_codes(G, styles, None if times is None else times.to(device), k, progress)
        encoded = time.monotonic()
        if optimize:
            if times is None:  # one row per reference, each a still at t = 0
                targets, t = frames.transpose(0, 1), torch.zeros(k, 1, device=device)
            else:
                targets, t = frames, times.to(device)
            codes = optimize_codes(G, codes, targets, t, optimize, seconds, distance, progress=progress)
        seconds_spent = {"encode": encoded - started, "optimize": time.monotonic() - encoded}
        return Inversion(codes, styles, weights, residual, seconds_spent)

    def _video_frames(self, video, align: str, progress: bool = False) -> torch.Tensor:
        from stylevid.video import read_video  # noqa: PLC0415

        if isinstance(video, (str, Path)):
            video = read_video(video)  # [T, 3, H, W] in [-1, 1]
        if isinstance(video, torch.Tensor):
            if video.ndim != 4 or video.shape[1] != 3:
                raise ValueError(f"a video tensor must be [T, 3, H, W] in [-1, 1], not {list(video.shape)}")
            r = self.config.resolution
            if align == "none" and video.shape[-1] == r and video.shape[-2] == r:
                return video.float()
            video = ((video.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        video = np.asarray(video)
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(
                f"a video array must be uint8 [T, H, W, 3], not {video.dtype} {list(video.shape)}"
            )
        return align_video(video, self.config.resolution, align, progress=progress)

    def save(self, path: str | Path, metadata: dict | None = None) -> Path:
        """Write the encoder (.safetensors with its config, naming its generator)."""
        return save_encoder(path, self.encoder, {**self.metadata, **(metadata or {})})


def save_encoder(path: str | Path, encoder: Encoder, metadata: dict | None = None) -> Path:
    return checkpoint.save_checkpoint(
        path, {MODULE: encoder}, {"encoder": encoder.config.to_dict()}, metadata
    )


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> VideoEncoder:
    """A VideoEncoder from an encoder checkpoint (train-encoder's) or a built-in ('builtin:synth64')."""
    path = builtin.resolve_encoder(path)
    checkpoint.refuse_training_state(Path(path), "stylevid train-encoder")
    ckpt = checkpoint.load_checkpoint(path)
    if "encoder" not in ckpt.config or MODULE not in ckpt.tensors:
        what = "a generator checkpoint" if "model" in ckpt.config else "not an encoder checkpoint"
        raise checkpoint.CheckpointError(
            f"{path} is {what}; pass the encoder that `stylevid train-encoder` wrote (encoder-*.safetensors)"
        )
    encoder = Encoder(checkpoint.read_config(ckpt, "encoder", EncoderConfig.from_dict))
    checkpoint.load_module_state(encoder, ckpt.tensors[MODULE], MODULE)
    return VideoEncoder(encoder.to(device), ckpt.metadata)
