"""The Python API researchers edit with: load a checkpoint, sample codes, render videos of any length."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import torch

from stylevid import builtin, checkpoint
from stylevid.codes import Codes
from stylevid.config import TRAJECTORY_FACTORS, ModelConfig
from stylevid.networks import Generator
from stylevid.networks.generator import batch_times

GENERATOR_KEYS = ("G_ema", "G")  # the EMA weights are the ones to render with
DEFAULT_CHUNK = 16


class VideoGenerator:
    """A generator for inference: `sample` codes, edit them (see Codes), `render` frames in [-1, 1]."""

    def __init__(
        self,
        generator: Generator,
        model_config: ModelConfig | None = None,
        metadata: dict | None = None,
        weights: str | None = None,
    ):
        self.generator = generator.eval().requires_grad_(False)
        self.model_config = model_config
        self.metadata = dict(metadata or {})
        self.weights = weights  # the checkpoint module the weights came from ('G_ema' or 'G'), if any

    @property
    def device(self) -> torch.device:
        return self.generator.identity.w_avg.device

    @property
    def resolution(self) -> int:
        return self.generator.config.resolution

    @property
    def sha256(self) -> str:
        """SHA-256 of the generator's weights: what an encoder checks it was trained for."""
        if getattr(self, "_sha256", None) is None:
            self._sha256 = checkpoint.module_sha256(self.generator)
        return self._sha256

    def to(self, device) -> VideoGenerator:
        self.generator.to(device)
        return self

    @torch.no_grad()
    def sample(
        self, n: int = 1, seed: int = 0, frames: int = 256, psi: float | Mapping[str, float] = 1.0
    ) -> Codes:
        """Codes of n videos from `seed` covering `frames` frames; psi: truncation, per factor if a dict."""
        return self.generator.sample(n, seed, frames, psi)

    def sample_seeds(
        self, seeds: Iterable[int], frames: int = 256, psi: float | Mapping[str, float] = 1.0
    ) -> Codes:
        """One video per seed, each the same as sample(1, seed)."""
        return Codes.cat([self.sample(1, s, frames, psi) for s in seeds])

    def frames(self, codes: Codes, t, chunk: int = DEFAULT_CHUNK) -> Iterator[torch.Tensor]:
        """Render in chunks of `chunk` frames: yields [N, <=chunk, 3, R, R] in [-1, 1].

        Working memory is that of one chunk however long the video. Frames do not depend on one
        another, so any chunking gives the same frames, bit for bit for the same chunk size and
        up to float32 rounding (~1e-6: BLAS sums in a batch-size-dependent order) otherwise.
        Times the codes do not cover are refused here, before any frame is rendered.
        """
        if chunk < 1:
            raise ValueError(f"chunk={chunk} must be at least 1 frame")
        codes = codes.to(self.device)
        t = batch_times(t, len(codes), self.device)
        _check_coverage(codes, t)
        return self._chunks(codes, t, chunk)

    @torch.no_grad()
    def _chunks(self, codes: Codes, t: torch.Tensor, chunk: int) -> Iterator[torch.Tensor]:
        for start in range(0, t.shape[1], chunk):
            yield self.generator(codes, t[:, start : start + chunk]).clamp(-1, 1)

    def render(self, codes: Codes, t, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
        """Frames [N, T, 3, R, R] in [-1, 1] at times t (int T for frames 0..T-1, [T] or [N, T])."""
        return torch.cat(list(self.frames(codes, t, chunk)), dim=1)

    @torch.no_grad()
    def render_layers(self, codes: Codes, t) -> dict[str, torch.Tensor]:
        """Frames and parts: foreground [N, T, 3, R, R], alpha [N, T, 1, R, R], background [N, 3, R, R];
        with shading also the painted surface [N, T, 6, R, R] (albedo, normal).

        Also the styles the frames were made with: pose and lighting [N, T, w_dim].
        """
        codes = codes.to(self.device)
        t = batch_times(t, len(codes), self.device)
        _check_coverage(codes, t)
        frames, parts = self.generator(codes, t, layers=True)
        return {"frames": frames, **parts}

    @property
    def controls(self) -> dict[str, dict]:
        """The physical values Codes.with_pose / with_light can set on this generator: name -> {factor,
        low, high, unit, default}; empty for a generator without the face layer (generator.face3d)."""
        face = self.generator.face
        if face is None:
            return {}
        from stylevid.networks.face3d import POSE_LIMITS  # noqa: PLC0415

        out = {
            name: {"factor": "pose", "low": low, "high": high, "unit": "degrees", "default": 0.0}
            for name, (low, high) in POSE_LIMITS.items()
        }
        for name in face.light_names:
            low, high = face.light.limits[name]
            angle = name in ("azimuth", "elevation")
            default = min(max(0.0, low), high) if angle else (low + high) / 2
            unit = "degrees" if angle else ""
            out[name] = {"factor": "lighting", "low": low, "high": high, "unit": unit, "default": default}
        return out

    @torch.no_grad()
    def pose_angles(self, codes: Codes, t) -> dict[str, torch.Tensor]:
        """Yaw, pitch, roll in degrees [N, T] of the codes at times t (a generator with the face layer)."""
        values = self._physical(codes, t)
        return {name: values[name] for name in ("yaw", "pitch", "roll")}

    @torch.no_grad()
    def light_values(self, codes: Codes, t) -> dict[str, torch.Tensor]:
        """The light's named parameters [N, T] of the codes at times t (azimuth and elevation in degrees)."""
        values = self._physical(codes, t)
        return {name: values[name] for name in self.generator.face.light_names}

    def _physical(self, codes: Codes, t) -> dict[str, torch.Tensor]:
        if self.generator.face is None:
            raise ValueError(
                "this generator has no face layer (generator.face3d), so its pose and light have no"
                " physical values; builtin:synth64 has one"
            )
        codes = codes.to(self.device)
        t = batch_times(t, len(codes), self.device)
        _check_coverage(codes, t)
        return self.generator.physical_values(codes, t)

    def invert(self, encoder=None, **references) -> Codes:
        """Codes of references: images=[...] or video=... (see VideoEncoder.invert for the options).

        encoder: a VideoEncoder or its checkpoint; None for a built-in model's own encoder.
        """
        from stylevid.encoder import VideoEncoder, load_encoder  # noqa: PLC0415

        if encoder is None:
            name = self.metadata.get("builtin")
            if not name:
                raise ValueError(
                    "this generator has no built-in encoder: pass encoder= (a checkpoint from"
                    " `stylevid train-encoder`)"
                )
            encoder = f"{builtin.PREFIX}{name}"
        if not isinstance(encoder, VideoEncoder):
            encoder = load_encoder(encoder, device=self.device)
        return encoder.invert(self, **references)

    def save(self, path: str | Path, metadata: dict | None = None) -> Path:
        """Write a generator-only checkpoint (.safetensors), under the name its weights were loaded from."""
        config = (self.model_config or ModelConfig(self.generator.config)).to_dict()
        return checkpoint.save_checkpoint(
            path,
            {self.weights or GENERATOR_KEYS[0]: self.generator},
            {"model": config},
            {**self.metadata, **(metadata or {})},
        )


def _check_coverage(codes: Codes, t: torch.Tensor) -> None:
    """Refuse times t [N, T] outside what the pose or lighting anchors of `codes` cover."""
    if not t.numel():
        return
    for factor in TRAJECTORY_FACTORS:
        trajectory = getattr(codes, factor)
        asked = trajectory.times(t)  # a frozen video shows its frozen time in every frame
        low, high = asked.min().item(), asked.max().item()
        if low < 0 or high > trajectory.duration:
            frozen = "" if torch.isnan(trajectory.frozen_at).all() else " (frozen videos: their frozen time)"
            fix = "times start at 0" if low < 0 else f"sample the codes with frames >= {math.ceil(high) + 1}"
            raise ValueError(
                f"{factor} times span [{low:g}, {high:g}]{frozen} but the codes' {factor} covers"
                f" [0, {trajectory.duration:g}] frames; {fix}"
            )


def load(path: str | Path, device: str | torch.device = "cpu") -> VideoGenerator:
    """A VideoGenerator from a stylevid checkpoint (.safetensors) or a built-in ('builtin:synth64').

    Loads the checkpoint's 'G_ema', else 'G' with a warning.
    """
    path = builtin.resolve(path)
    checkpoint.refuse_training_state(Path(path), "stylevid train")
    ckpt = checkpoint.load_checkpoint(path)
    model_config = checkpoint.read_config(ckpt, "model", ModelConfig.from_dict)
    name = next((key for key in GENERATOR_KEYS if key in ckpt.tensors), None)
    if name is None:
        raise checkpoint.CheckpointError(
            f"{path} holds no generator: looked for {', '.join(GENERATOR_KEYS)}, found {sorted(ckpt.tensors)}"
        )
    if name != GENERATOR_KEYS[0]:
        warnings.warn(
            f"{path} has no {GENERATOR_KEYS[0]!r} (the moving average of the generator's weights, which "
            f"renders cleaner frames); rendering with the training generator {name!r} instead. Save "
            f"{GENERATOR_KEYS[0]!r} in the checkpoint to render with it",
            UserWarning,
            stacklevel=2,
        )
    generator = Generator(model_config.generator)
    checkpoint.load_module_state(generator, ckpt.tensors[name], name)
    return VideoGenerator(generator.to(device), model_config, ckpt.metadata, name)
