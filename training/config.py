"""Typed training configuration with presets: `synth64` (the CPU demo) and `ffs256` (StyleGAN-V's recipe)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from stylevid.config import DiscriminatorConfig, GeneratorConfig, ModelConfig, from_settings, preset
from stylevid.options import UsageError


@dataclass
class LossWeights:
    """Weights of the regularisers; 0 switches a term off. The disentanglement terms are Disentangle's."""

    r1_gamma: float = 1.0  # R1 penalty on real clips, applied lazily
    # The face layer's pose and light values held to the data's distribution of them
    # (training/value_prior.py; the synthetic renderer's light only)
    value_prior: float = 0.0
    # Each generated frame's pose and light, as the synthetic teacher reads them, held to the face layer's
    # own values (training/imitate.py; the renderer's light and the synthetic teacher only)
    imitate: float = 0.0


# The weights of the factor head learned alongside G (InfoGAN's Q) that earlier versions trained:
# the ablation (benchmarks/disentangle.py, README) found it no better than no teacher at twice the
# cost, and it was removed. Runs that used it load and resume without it.
_REMOVED_LOSS_WEIGHTS = ("identity", "recovery", "swap")


TEACHERS = ("synthetic", "faces")  # the kinds of factor teacher (training/teachers.py), or 'none'


@dataclass
class Disentangle:
    """The pair terms, computed in a frozen teacher's space (training/teachers.py, training/pairs.py).

    The G batch holds pairs of clips that share all latents but one. keep: the factors a pair did
    not change must not move (squared, in spreads of real data); move: the changed one must move by
    at least `margin` spreads; contrast: InfoNCE over the teacher's identity readings, positives
    the same identity code in other scenes. Weights ramp linearly from 0 at start_kimg to full at
    start_kimg + ramp_kimg, once the GAN has begun to draw something.
    """

    teacher: str = "synthetic"  # 'synthetic' (renderer-trained probe), 'faces' (real faces), 'none'
    keep: float = 3.0
    move: float = 1.0
    contrast: float = 0.5
    margin: float = 0.6
    start_kimg: float = 0.3
    ramp_kimg: float = 1.0

    def __post_init__(self) -> None:
        if self.teacher not in (*TEACHERS, "none"):
            raise ValueError(f"teacher={self.teacher!r} must be one of {', '.join(TEACHERS)} or 'none'")
        for name in ("keep", "move", "contrast", "margin", "start_kimg", "ramp_kimg"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"disentangle.{name}={getattr(self, name)} must be >= 0")

    @property
    def active(self) -> bool:
        """Whether any pair term trains (a teacher and a positive weight)."""
        return self.teacher != "none" and (self.keep > 0 or self.move > 0 or self.contrast > 0)

    def ramp(self, kimg: float) -> float:
        """The weights' factor at `kimg`: 0 before start_kimg, 1 after the ramp."""
        if self.ramp_kimg == 0:
            return float(kimg >= self.start_kimg)
        return min(max((kimg - self.start_kimg) / self.ramp_kimg, 0.0), 1.0)


@dataclass
class AugmentConfig:
    """Adaptive augmentation (ADA): one draw per clip, applied to all its frames alike."""

    enabled: bool = True
    target: float = 0.6  # wanted E[sign(D(real))]
    speed_kimg: float = 100.0  # kimg for p to go from 0 to 1 at full imbalance
    interval: int = 4  # steps between adjustments


@dataclass
class TrainConfig:
    """Everything a run needs besides the data path; stored as JSON in every snapshot."""

    model: ModelConfig = field(default_factory=lambda: preset("64"))
    batch: int = 16  # clips per step, over all processes
    max_gap: int = 32  # largest span (in frames) of a clip's K frames
    # Fake clips are cut from videos this long, so G is trained at every time it will be rendered
    # at (fvd2048_128f renders 128 frames; the slowest time encoding has a 512-frame period).
    video_frames: int = 1024
    lr_g: float = 0.0025
    lr_d: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    r1_interval: int = 16  # lazy regularisation: R1 every this many D steps
    ema_kimg: float = 10.0  # half-life of the generator EMA, in thousands of clips
    ema_rampup: float | None = 0.05  # EMA half-life at most this fraction of the clips seen
    loss: LossWeights = field(default_factory=LossWeights)
    disentangle: Disentangle = field(default_factory=Disentangle)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    kimg: float = 1000.0  # length of training, in thousands of real clips shown to D
    tick_kimg: float = 4.0  # progress report interval
    snapshot_ticks: int = 10  # snapshot every this many ticks (and at the end)
    seed: int = 0
    mixed_precision: bool = True  # bfloat16 autocast on CUDA; CPU always runs float32

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"batch={self.batch} must be at least 1")
        if self.max_gap < self.model.discriminator.frames - 1:
            raise ValueError(
                f"max_gap={self.max_gap} cannot hold {self.model.discriminator.frames} distinct frames; "
                f"use max_gap >= {self.model.discriminator.frames - 1}"
            )
        if self.video_frames <= self.max_gap:
            raise ValueError(
                f"video_frames={self.video_frames} must exceed max_gap={self.max_gap}: fake clips are cut"
                f" from videos of video_frames frames; use video_frames >= {self.max_gap + 1}"
            )
        for name in ("lr_g", "lr_d", "kimg", "tick_kimg", "ema_kimg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")
        if self.loss.r1_gamma < 0:
            raise ValueError(f"r1_gamma={self.loss.r1_gamma} must be >= 0 (0 switches R1 off)")
        for name in ("value_prior", "imitate"):
            if not getattr(self.loss, name) >= 0:
                raise ValueError(f"loss.{name}={getattr(self.loss, name)} must be >= 0 (0 switches it off)")
        generator = self.model.generator
        if self.loss.value_prior and not (generator.face3d and generator.light == "renderer"):
            raise ValueError(
                f"loss.value_prior={self.loss.value_prior} holds the face layer's values to the synthetic"
                " renderer's distribution: it needs generator.face3d with generator.light='renderer'"
                f" (this generator: face3d={generator.face3d}, light={generator.light!r}); set it to 0"
            )
        pairs = self.disentangle
        if self.loss.imitate and not (
            generator.face3d
            and generator.light == "renderer"
            and pairs.teacher == "synthetic"
            and pairs.active
        ):
            raise ValueError(
                f"loss.imitate={self.loss.imitate} reads each frame's pose and light with the pair terms'"
                " synthetic teacher against the face layer's values: it needs generator.face3d with"
                " generator.light='renderer' and disentangle.teacher='synthetic' with a pair term on (this"
                f" run: face3d={generator.face3d}, light={generator.light!r}, teacher={pairs.teacher!r},"
                f" pair terms {'on' if pairs.active else 'off'}); set it to 0"
            )
        if generator.pose_marginal and generator.light != "renderer":
            raise ValueError(
                "generator.pose_marginal maps the pose through the data's quantile function, known only for"
                f" the synthetic renderer's data (generator.light='renderer'; this one: {generator.light!r});"
                " set generator.pose_marginal to false"
            )
        if self.r1_interval < 1 or self.snapshot_ticks < 1:
            raise ValueError("r1_interval and snapshot_ticks must be at least 1")
        if self.disentangle.active and self.batch % 2:
            raise ValueError(
                f"batch={self.batch} must be even: the teacher terms train on pairs of clips; use an even"
                f" batch (stylevid train --batch {self.batch + 1})"
            )

    def with_changes(self, **changes) -> tuple[TrainConfig, dict[str, list]]:
        """A copy with RESUMABLE settings changed (None: keep), and {name: [old, new]} of the changed ones;
        UsageError where a change does not fit the configuration (an odd batch with teachers)."""
        unknown = sorted(set(changes) - set(RESUMABLE))
        if unknown:
            raise ValueError(f"cannot change {unknown} of a run; changeable: {', '.join(RESUMABLE)}")
        config, changed = self, {}
        for name, value in changes.items():
            if value is None:
                continue
            old = self.loss.r1_gamma if name == "r1_gamma" else getattr(self, name)
            if value == old:
                continue
            try:
                if name == "r1_gamma":
                    loss = dataclasses.replace(config.loss, r1_gamma=value)
                    config = dataclasses.replace(config, loss=loss)
                else:
                    config = dataclasses.replace(config, **{name: value})
            except ValueError as exc:
                raise UsageError(str(exc)) from None  # the changes are the caller's options, e.g. --batch
            changed[name] = [old, value]
        return config, changed

    def to_dict(self) -> dict:
        """JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of to_dict; an unknown name or a value of the wrong type is a ValueError naming it."""
        if not isinstance(data, dict) or "model" not in data:
            raise ValueError(f"training is {str(data)[:80]!r}; expected a JSON object of settings with model")
        loss = data.get("loss", {})
        if isinstance(loss, dict):
            loss = {k: v for k, v in loss.items() if k not in _REMOVED_LOSS_WEIGHTS}
        parts = {
            "model": ModelConfig.from_dict(data["model"]),
            "loss": from_settings(LossWeights, loss, "training.loss"),
            "augment": from_settings(AugmentConfig, data.get("augment", {}), "training.augment"),
            # Runs from before the teachers trained with the learned head's terms alone.
            "disentangle": from_settings(
                Disentangle, data.get("disentangle", {"teacher": "none"}), "training.disentangle"
            ),
        }
        config = from_settings(cls, {**data, **parts}, "training")
        return dataclasses.replace(config, betas=tuple(config.betas))


def _synth64() -> TrainConfig:
    # Small enough to learn faces on two CPU cores in minutes.
    model = ModelConfig(
        GeneratorConfig(
            resolution=64,
            z_dim=64,
            motion_dim=32,
            w_dim=128,
            mapping_layers=2,
            motion_layers=2,
            channel_base=1024,
            channel_max=64,
            # The 3D-aware face layer with the synthetic renderer's camera (8 head units away, the head
            # turning about its centre 0.1 half-widths above the frame's) and light family.
            face3d=True,
            light="renderer",
            camera_distance=16 / 3,
            pivot=(0.0, 0.1, 0.0),
            # Its head albedo starts from a face drawn where the renderer paints eyes, brows and mouth.
            face_template=True,
            # The face's depth residual averages 0 over the head's core: without it the faces sank towards
            # the pivot and turned heads read less turned (docs/results.md).
            centred_depth=True,
        ),
        DiscriminatorConfig(resolution=64, frames=3, fuse_resolution=16, channel_base=1024, channel_max=64),
    )
    return TrainConfig(
        model=model,
        batch=8,
        max_gap=16,
        lr_g=0.002,
        lr_d=0.002,
        ema_kimg=1.0,
        kimg=20.0,
        tick_kimg=1.0,
        snapshot_ticks=5,
        # The light's energy and the head's turns spread as the renderer's: without it G dimmed the light
        # to its bound and painted brightness into the albedo (training/value_prior.py). Each frame shows
        # the pose and light G says it drew: without it the probes could not see most of its light; at 3
        # instead of 1 the leakage fell from 0.48 to 0.41 (training/imitate.py, docs/results.md).
        loss=LossWeights(r1_gamma=1.0, value_prior=1.0, imitate=3.0),
        augment=AugmentConfig(enabled=False),
    )


def _ffs256() -> TrainConfig:
    # StyleGAN-V's FaceForensics 256² recipe: batch 64, 3 frames per clip, gap <= 32, ADA 0.6, R1.
    model = preset("256")
    # The face layer for real faces: perspective at face distance, a spherical-harmonics light.
    model.generator = dataclasses.replace(model.generator, face3d=True, light="sh")
    return TrainConfig(
        model=model,
        batch=64,
        max_gap=32,
        lr_g=0.0025,
        lr_d=0.0025,
        ema_kimg=20.0,
        kimg=25000.0,
        loss=LossWeights(r1_gamma=1.0),
        # Real faces: the teacher is made of networks others trained (training/face_teacher.py).
        disentangle=Disentangle(teacher="faces"),
        augment=AugmentConfig(enabled=True, target=0.6),
    )


# What `stylevid train --resume RUN` may change from the snapshot on (to recover from a NaN, or to
# train longer); everything else is the run's and stays.
RESUMABLE = ("lr_g", "lr_d", "r1_gamma", "batch", "kimg")

PRESETS = {"synth64": _synth64, "ffs256": _ffs256}


def train_preset(name: str) -> TrainConfig:
    """A fresh TrainConfig for 'synth64' or 'ffs256'."""
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
