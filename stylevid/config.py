"""The four factors, and the typed model configuration with presets (64², 128², 256²), stored as JSON."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

FACTORS = ("identity", "pose", "lighting", "background")
# Pose and lighting change over time (a trajectory in the model, a value per frame in a dataset);
# identity and background are one vector per video.
TRAJECTORY_FACTORS = ("pose", "lighting")
VECTOR_FACTORS = tuple(f for f in FACTORS if f not in TRAJECTORY_FACTORS)


def _power_of_two(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or value < low or value > high or value & (value - 1):
        raise ValueError(f"{name}={value!r} must be a power of two in [{low}, {high}]")


def _positive(name: str, value) -> None:
    if not value > 0:
        raise ValueError(f"{name}={value!r} must be positive")


def from_settings(kind: type[T], data: Any, where: str) -> T:
    """kind(**data) for a JSON object of settings, checked first: a dict, known names, each value of its type.

    `where` names the settings in messages ('generator', 'training.loss'): a value of the wrong type is a
    ValueError naming the field, the value and the type expected, not a TypeError from inside `kind`.
    Fields that are themselves settings (a dataclass) take an instance, built by the caller.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where} is {data!r}; expected a JSON object of {where} settings")
    hints = typing.get_type_hints(kind)
    known = sorted(f.name for f in dataclasses.fields(kind))
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {where} settings {unknown}; known: {known}")
    for name, value in data.items():
        if not _fits(value, hints[name]):
            raise ValueError(f"{where}.{name} is {value!r}; expected {_type_name(hints[name])}")
    return kind(**data)


def _fits(value: Any, kind: Any) -> bool:
    """Whether a JSON value can stand for a field of type `kind` (an int for a float; no bool for an int)."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        return any(_fits(value, k) for k in typing.get_args(kind))
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        return isinstance(value, list | tuple) and len(value) == len(args) and all(map(_fits, value, args))
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True


def _type_name(kind: Any) -> str:
    names = {float: "a number", int: "an integer", bool: "true or false", str: "a string", type(None): "null"}
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        return " or ".join(_type_name(k) for k in typing.get_args(kind))
    if typing.get_origin(kind) is tuple:
        return f"a list of {len(typing.get_args(kind))} numbers"
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def channels_at(resolution: int, base: int, maximum: int) -> int:
    """Feature channels of the layers working at `resolution`: base / resolution, capped."""
    return max(min(base // resolution, maximum), 1)


@dataclass
class GeneratorConfig:
    """The generator: four mappings (one per factor) and the foreground/background synthesis."""

    resolution: int = 64
    z_dim: int = 128  # identity, background and per-video motion codes
    motion_dim: int = 64  # size of the anchor codes of pose and lighting trajectories
    w_dim: int = 256
    mapping_layers: int = 4  # identity and background mappings
    motion_layers: int = 2  # pose and lighting mappings
    anchor_spacing: float = 16.0  # frames between trajectory anchors
    time_freqs: int = 8  # sinusoids of the time encoding
    channel_base: int = 4096
    channel_max: int = 256
    background_ratio: float = 0.5  # background branch channels relative to the foreground's
    conv_clamp: float | None = None
    # The lighting prior (networks/shading.py): the foreground paints albedo and normals, styled by
    # identity and pose only, and the lighting code sets the light that shades them.
    shading: bool = False
    # The pose prior (networks/pose_warp.py): one canonical face per video, styled by identity (and
    # lighting without shading), turned per frame by the pose code.
    pose_warp: bool = False
    # The 3D-aware face layer (networks/face3d.py), which replaces both priors above: identity paints a
    # canonical, frontal face (albedo, depth, silhouette) and a body once per video; the pose code turns
    # the head by yaw, pitch, roll in degrees; the lighting code sets a physical light ('renderer': the
    # synthetic renderer's family; 'sh': spherical harmonics for real faces).
    face3d: bool = False
    light: str = "renderer"
    camera_distance: float = 16 / 3  # in half frame widths: the synthetic renderer's 8 head units
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)  # where the head turns, in half frame widths
    # Half-axes (x, y) of the dome every head's depth starts from, in half frame widths; the default is
    # fitted to an average synthetic head (networks/face3d.py: DOME_SHAPE). Checkpoints from before this
    # field was stored were trained on it or on (0.55, 0.72) (face-layer checkpoints of 2026-12-06).
    dome: tuple[float, float] = (0.6, 0.9)
    # The face layer's priors, each switchable for the ablation (benchmarks/disentangle.py).
    symmetric: bool = True  # the canonical layers are mirror-symmetric by construction
    binary_alpha: bool = True  # silhouettes are 0 or 1 in the forward pass
    learned_depth: bool = True  # identity shapes the head's depth (else one dome for everyone)
    face_template: bool = False  # the head's albedo starts from a drawn face (eyes, brows, nostrils, lips)
    # The pose head's readings are standardised and mapped through the data's quantile function (stored
    # in the checkpoint), so the generated pose spread is the data's by construction (face3d only).
    pose_marginal: bool = False
    # The head's learned depth residual has mean 0 over the head's core, so identity shapes the face but
    # cannot sink it towards the pivot as a whole (which makes a turned head look less turned).
    centred_depth: bool = False
    # The renderer light's highlight on the head's skin (light='renderer' only): light the albedo cannot
    # take back, which shows the key light's direction and strength apart from the skin's brightness.
    specular: bool = False
    # The body's depth starts from the renderer's neck and shoulders instead of a flat sheet, so the light
    # shades them as it shades the data's.
    body_shape: bool = False

    def __post_init__(self) -> None:
        _power_of_two("generator.resolution", self.resolution, 8, 1024)
        if self.face3d and (self.shading or self.pose_warp):
            raise ValueError(
                "generator.face3d replaces generator.shading and generator.pose_warp; set those to false"
            )
        self.pivot = tuple(float(v) for v in self.pivot)  # JSON gives a list
        self.dome = tuple(float(v) for v in self.dome)
        if len(self.dome) != 2 or not all(0 < v <= 2 for v in self.dome):
            raise ValueError(
                f"generator.dome={list(self.dome)} must be two half-axes (x, y) in (0, 2] half frame widths,"
                " e.g. [0.6, 0.9]"
            )
        for name in ("pose_marginal", "centred_depth", "specular", "body_shape"):
            if getattr(self, name) and not self.face3d:
                raise ValueError(f"generator.{name} is a face layer setting: it needs generator.face3d")
        if self.light not in ("renderer", "sh"):
            raise ValueError(f"generator.light={self.light!r} must be 'renderer' or 'sh'")
        if self.specular and self.light != "renderer":
            raise ValueError(
                "generator.specular is the synthetic renderer light's highlight; with generator.light='sh'"
                " set it to false"
            )
        if not self.camera_distance > 1.5:
            raise ValueError(
                f"generator.camera_distance={self.camera_distance} must exceed 1.5 half frame widths:"
                " the camera must stay outside the head"
            )
        for name in ("z_dim", "motion_dim", "w_dim", "mapping_layers", "motion_layers", "time_freqs"):
            _positive(f"generator.{name}", getattr(self, name))
        _positive("generator.anchor_spacing", self.anchor_spacing)
        if not 0 < self.background_ratio <= 1:
            raise ValueError(f"generator.background_ratio={self.background_ratio} must be in (0, 1]")
        if self.channel_base < self.resolution or self.channel_max < 1:
            raise ValueError(
                f"generator.channel_base={self.channel_base} must be at least the resolution "
                f"({self.resolution}) and channel_max={self.channel_max} at least 1"
            )

    def channels(self, resolution: int, ratio: float = 1.0) -> int:
        return max(int(channels_at(resolution, self.channel_base, self.channel_max) * ratio), 1)


@dataclass
class DiscriminatorConfig:
    """The temporal discriminator: per-frame 2-D blocks, fusion of K frames, time-gap conditioning."""

    resolution: int = 64
    frames: int = 3  # K frames per clip
    fuse_resolution: int = 16  # where the K frames' features are concatenated
    channel_base: int = 4096
    channel_max: int = 256
    mbstd_group: int = 4
    time_freqs: int = 8
    image_head: bool = True  # also score each frame on its own
    conv_clamp: float | None = None

    def __post_init__(self) -> None:
        _power_of_two("discriminator.resolution", self.resolution, 8, 1024)
        _power_of_two("discriminator.fuse_resolution", self.fuse_resolution, 4, self.resolution)
        if self.frames < 2:
            raise ValueError(f"discriminator.frames={self.frames} must be at least 2 to see motion")
        _positive("discriminator.mbstd_group", self.mbstd_group)
        _positive("discriminator.time_freqs", self.time_freqs)
        if self.channel_base < self.resolution or self.channel_max < 1:
            raise ValueError(
                f"discriminator.channel_base={self.channel_base} must be at least the resolution "
                f"({self.resolution}) and channel_max={self.channel_max} at least 1"
            )

    def channels(self, resolution: int) -> int:
        return channels_at(resolution, self.channel_base, self.channel_max)


@dataclass
class ModelConfig:
    """Generator and discriminator together; their resolutions must agree."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        if self.generator.resolution != self.discriminator.resolution:
            raise ValueError(
                f"generator.resolution={self.generator.resolution} differs from "
                f"discriminator.resolution={self.discriminator.resolution}; set both to one value"
            )

    def to_dict(self) -> dict:
        """Plain JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of to_dict; an unknown name or a value of the wrong type is a ValueError naming it."""
        if not isinstance(data, dict):
            raise ValueError(f"model is {data!r}; expected a JSON object of generator and discriminator")
        parts = {
            key: from_settings(kind, data.get(key, {}), key)
            for key, kind in (("generator", GeneratorConfig), ("discriminator", DiscriminatorConfig))
        }
        return from_settings(cls, {**data, **parts}, "model")


def _preset(resolution: int, base: int, maximum: int, z: int, w: int, mapping: int, fuse: int) -> ModelConfig:
    return ModelConfig(
        GeneratorConfig(
            resolution=resolution,
            z_dim=z,
            w_dim=w,
            mapping_layers=mapping,
            channel_base=base,
            channel_max=maximum,
        ),
        DiscriminatorConfig(
            resolution=resolution, fuse_resolution=fuse, channel_base=base, channel_max=maximum
        ),
    )


# 64: small enough to train on a laptop CPU. 256: StyleGAN2's 256² configuration (W 512, 8-layer
# mapping, channel base 16384, at most 512 channels), the generator size StyleGAN-V trains on
# FaceForensics at 256².
PRESETS = {
    "64": lambda: _preset(64, 4096, 256, 128, 256, 4, 16),
    "128": lambda: _preset(128, 8192, 512, 256, 512, 6, 16),
    "256": lambda: _preset(256, 16384, 512, 512, 512, 8, 32),
}


def preset(name: str | int) -> ModelConfig:
    """A fresh ModelConfig for a preset name ('64', '128', '256')."""
    key = str(name)
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[key]()
