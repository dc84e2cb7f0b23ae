"""The disentangled video generator: four mappings, a foreground and a background synthesis branch."""

from __future__ import annotations

import math
from collections.abc import Mapping as MappingType

import torch
from torch import nn

from stylevid.codes import Codes, Trajectory
from stylevid.config import FACTORS, TRAJECTORY_FACTORS, GeneratorConfig
from stylevid.networks.face3d import CANONICAL_CHANNELS, FaceLayer
from stylevid.networks.layers import SynthesisNetwork
from stylevid.networks.mapping import Mapping, MotionMapping
from stylevid.networks.pose_warp import PoseWarp
from stylevid.networks.shading import SURFACE_CHANNELS, LambertianShading
from stylevid.shapes import assert_shape

# Each factor draws its random numbers from its own stream, so asking for a longer video (more
# anchors) or changing one factor's size never changes what a seed gives the others.
_FACTOR_STREAMS = {name: i for i, name in enumerate(FACTORS)}


class Generator(nn.Module):
    """Codes + times -> frames [N, T, 3, R, R] (unbounded; about [-1, 1] once trained).

    frame = alpha * foreground + (1 - alpha) * background, where the foreground is styled by
    identity + pose(t) + lighting(t) and the background only by the background code, once per video.
    With config.shading the foreground is styled by identity + pose(t) alone and lit by lighting(t)
    (networks/shading.py).
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = c = config
        self.identity = Mapping(c.z_dim, c.w_dim, c.mapping_layers)
        self.background = Mapping(c.z_dim, c.w_dim, c.mapping_layers)
        self.pose = MotionMapping(
            c.z_dim, c.motion_dim, c.w_dim, c.motion_layers, c.anchor_spacing, c.time_freqs
        )
        self.lighting = MotionMapping(
            c.z_dim, c.motion_dim, c.w_dim, c.motion_layers, c.anchor_spacing, c.time_freqs
        )
        styled_by = 1 if c.face3d else 3 - int(c.shading) - int(c.pose_warp)
        painted = SURFACE_CHANNELS if c.shading else 3
        self.foreground_synthesis = SynthesisNetwork(
            styled_by * c.w_dim,
            c.resolution,
            c.channels,
            CANONICAL_CHANNELS if c.face3d else painted + 1,
            c.conv_clamp,
        )
        self.face = (
            FaceLayer(
                c.w_dim,
                c.resolution,
                c.light,
                c.camera_distance,
                c.pivot,
                c.symmetric,
                c.binary_alpha,
                c.learned_depth,
                c.face_template,
                c.dome,
                c.pose_marginal,
                c.centred_depth,
                c.specular,
                c.body_shape,
            )
            if c.face3d
            else None
        )
        self.shading = LambertianShading(c.w_dim) if c.shading else None
        self.pose_warp = PoseWarp(c.w_dim, c.resolution) if c.pose_warp else None
        self.background_synthesis = SynthesisNetwork(
            c.w_dim, c.resolution, lambda r: c.channels(r, c.background_ratio), 3, c.conv_clamp
        )

    def anchors_for(self, frames: int) -> int:
        """Number of anchors for times [0, frames - 1], plus the two that shape the last stretch.

        The smoothing filter and the cubic interpolation each look one anchor ahead; drawing
        those too makes the first `frames` frames identical to those of any longer sample.
        """
        return max(math.ceil((frames - 1) / self.config.anchor_spacing), 1) + 3

    def sample(
        self,
        n: int,
        seed: int = 0,
        frames: int = 256,
        psi: float | MappingType[str, float] = 1.0,
    ) -> Codes:
        """Codes of n videos from `seed` covering `frames` frames; psi: truncation, per factor if a dict."""
        c = self.config
        device = self.identity.w_avg.device
        psi = _per_factor_psi(psi)
        rng = {f: torch.Generator().manual_seed(seed * len(FACTORS) + i) for f, i in _FACTOR_STREAMS.items()}
        # Drawn on the CPU (the same codes on every device) and uploaded without waiting for the
        # device: a blocking upload would stall a training step until the GPU is idle.
        z = {f: torch.randn(n, c.z_dim, generator=rng[f]).to(device, non_blocking=True) for f in FACTORS}
        identity = self.identity.truncate(self.identity(z["identity"]), psi["identity"])
        background = self.background.truncate(self.background(z["background"]), psi["background"])
        trajectories = {}
        for factor in TRAJECTORY_FACTORS:
            # One anchor after another from the stream: a longer video extends, not reshuffles.
            anchors = torch.stack(
                [
                    torch.randn(n, c.motion_dim, generator=rng[factor])
                    for _ in range(self.anchors_for(frames))
                ],
                dim=1,
            )
            trajectories[factor] = Trajectory(
                z[factor],
                anchors.to(device, non_blocking=True),
                c.anchor_spacing,
                torch.full([n], psi[factor], device=device),
                torch.full([n], float("nan"), device=device),
            )
        return Codes(identity, trajectories["pose"], trajectories["lighting"], background)

    def trajectory_styles(self, factor: str, trajectory: Trajectory, t: torch.Tensor):
        """W of a trajectory at times t [N, T]: [N, T, w_dim], truncated by its psi."""
        net = getattr(self, factor)
        w = net(trajectory.z, trajectory.anchors, trajectory.times(t))
        return net.truncate(w, trajectory.psi)

    def forward(self, codes: Codes, t: torch.Tensor, layers: bool = False):
        """Frames [N, T, 3, R, R] at times t ([T] or [N, T], in frames); with layers, also the parts."""
        n, c = len(codes), self.config
        t = batch_times(t, n, codes.identity.device)
        assert_shape(codes.identity, [n, c.w_dim], "identity code")
        assert_shape(codes.background, [n, c.w_dim], "background code")
        pose = self.trajectory_styles("pose", codes.pose, t)
        lighting = self.trajectory_styles("lighting", codes.lighting, t)
        settings = self.settings(codes, t)
        return self.synthesize(codes.identity, pose, lighting, codes.background, layers, settings)

    def physical_values(self, codes: Codes, t) -> dict[str, torch.Tensor]:
        """The face layer's pose angles (degrees) and light parameters at times t: name -> [N, T], with what
        the codes set (Codes.with_pose / with_light) in place of the heads' readings."""
        if self.face is None:
            raise ValueError(
                "this generator has no face layer (generator.face3d): its pose and light have no"
                " physical values"
            )
        t = batch_times(t, len(codes), codes.identity.device)
        pose = self.trajectory_styles("pose", codes.pose, t)
        lighting = self.trajectory_styles("lighting", codes.lighting, t)
        values = self.face.values(pose, lighting, self.settings(codes, t))
        return {k: v for k, v in values.items() if v.ndim == 2}

    @property
    def pose_marginal(self) -> bool:
        """Whether the face layer maps its pose through the data's quantiles (generator.pose_marginal)."""
        return self.face is not None and self.face.pose_marginal

    @torch.no_grad()
    def calibrate_pose(self, frames: int, videos: int = 256, times: int = 16, seed: int = 0) -> None:
        """Set a pose_marginal face layer's running statistics to the mean and variance of its pose head's
        readings over `videos` sampled videos at `times` random times in [0, frames) each.

        While training, each batch is standardised by its own statistics and the running ones follow
        them; but a batch's clips share videos, so its variance falls short of the population's and
        the running average of it would spread the turns wider than the data's (7% at 10 kimg). The
        trainer calls this on G_ema before each snapshot; it is deterministic in `seed`.
        """
        if not self.pose_marginal:
            raise ValueError("calibrate_pose needs a face layer with generator.pose_marginal")
        codes = self.sample(videos, seed=seed, frames=frames)
        rng = torch.Generator().manual_seed(seed)
        t = (torch.rand(videos, times, generator=rng) * (frames - 1)).to(codes.identity.device)
        raw = self.face.pose_head(self.trajectory_styles("pose", codes.pose, t).float()).float().flatten(0, 1)
        self.face.pose_mean.copy_(raw.mean(0))
        self.face.pose_var.copy_(raw.var(0))

    def settings(self, codes: Codes, t: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The physical values the codes set (Codes.with_pose / with_light) at times t [N, T]: name -> [N, T]
        (NaN where a video keeps the value its code gives); None when none are set."""
        values = {}
        for trajectory in (codes.pose, codes.lighting):
            times = trajectory.times(t)
            values.update({name: keys.at(times) for name, keys in trajectory.settings.items()})
        if values and self.face is None:
            raise ValueError(
                f"the codes set {sorted(values)}, but this generator has no face layer (generator.face3d):"
                " its pose and light have no physical values; edit its codes by seeds instead"
            )
        return values or None

    def synthesize(
        self,
        identity: torch.Tensor,
        pose: torch.Tensor,
        lighting: torch.Tensor,
        background_w: torch.Tensor,
        layers: bool = False,
        settings: dict[str, torch.Tensor] | None = None,
    ):
        """Frames [N, T, 3, R, R] from styles: identity and background [N, w_dim], pose and lighting
        [N, T, w_dim] (what the mappings give at T times; the encoder predicts these).

        settings: physical values [N, T] (degrees, light parameters) that replace those the face layer
        reads from the styles, NaN where a video keeps its own.
        """
        n, steps = pose.shape[:2]
        assert_shape(lighting, [n, steps, self.config.w_dim], "lighting styles")
        background = self.background_synthesis(background_w)  # once per video
        if self.face is not None:
            return self._face_frames(identity, pose, lighting, background, layers, settings)
        fg = self._foreground(identity, pose, lighting)  # [N * T, C + 1, R, R]
        painted, alpha = fg[:, :-1], torch.sigmoid(fg[:, -1:])
        parts = {}
        if self.shading is not None:
            parts["surface"] = painted.reshape(n, steps, *painted.shape[1:])
            painted = self.shading(painted, lighting.reshape(n * steps, -1))
        rgb = painted.reshape(n, steps, *painted.shape[1:])
        alpha = alpha.reshape(n, steps, *alpha.shape[1:])
        frames = torch.lerp(background[:, None], rgb.to(background.dtype), alpha.to(background.dtype))
        if layers:
            parts.update({"foreground": rgb, "alpha": alpha, "background": background})
            return frames, {**parts, "pose": pose, "lighting": lighting}
        return frames

    def _face_frames(self, identity, pose, lighting, background, layers, settings):
        n, steps = pose.shape[:2]
        canonical = self.foreground_synthesis(identity)  # once per video, facing the camera
        rgb, alpha, values = self.face(canonical, pose, lighting, settings)
        rgb = rgb.reshape(n, steps, *rgb.shape[1:])
        alpha = alpha.reshape(n, steps, *alpha.shape[1:])
        frames = torch.lerp(background[:, None], rgb.to(background.dtype), alpha.to(background.dtype))
        if not layers:
            return frames
        parts = {
            "foreground": rgb,
            "alpha": alpha,
            "background": background,
            "pose": pose,
            "lighting": lighting,
        }
        parts["canonical"] = self.face.canonical(canonical)
        parts["values"] = values
        return frames, parts

    def _foreground(self, identity: torch.Tensor, pose: torch.Tensor, lighting: torch.Tensor) -> torch.Tensor:
        """The foreground layers of every frame [N * T, C + 1, R, R]: painted channels, then alpha's logit."""
        n, steps = pose.shape[:2]
        per_frame = [
            s for s, used in ((pose, self.pose_warp is None), (lighting, self.shading is None)) if used
        ]
        if per_frame:
            styles = torch.cat([identity[:, None].expand(-1, steps, -1), *per_frame], dim=-1)
            fg = self.foreground_synthesis(styles.reshape(n * steps, -1))
        else:  # styled by identity alone: painted once per video, like the background
            fg = self.foreground_synthesis(identity)
            fg = fg[:, None].expand(-1, steps, -1, -1, -1).reshape(n * steps, *fg.shape[1:])
        if self.pose_warp is not None:
            normals = slice(3, 6) if self.shading is not None else None
            fg = self.pose_warp(fg, pose.reshape(n * steps, -1), normals)
        return fg


def _per_factor_psi(psi) -> dict[str, float]:
    if isinstance(psi, MappingType):
        unknown = sorted(set(psi) - set(FACTORS))
        if unknown:
            raise ValueError(f"psi for unknown factors {unknown}; the factors are {', '.join(FACTORS)}")
        return {f: float(psi.get(f, 1.0)) for f in FACTORS}
    return dict.fromkeys(FACTORS, float(psi))


def batch_times(t, n: int, device) -> torch.Tensor:
    """Times as float [N, T]: an int T means frames 0..T-1; a [T] tensor is shared by all videos."""
    if isinstance(t, int):
        t = torch.arange(t, dtype=torch.float32)
    t = torch.as_tensor(t, dtype=torch.float32, device=device)
    if t.ndim == 1:
        t = t[None].expand(n, -1)
    if t.ndim != 2 or t.shape[0] != n:
        raise ValueError(f"times of shape {list(t.shape)} must be [T] or [N={n}, T]")
    return t
