"""The encoder network: per-frame features, heads for the four factors and a reference quality score.

It predicts the generator's styles (W vectors), as residuals from the current estimate in units of
the styles' spread over the generator's samples: identity and background are fused over the
references (fusion.AttentionPool), pose and lighting are read per frame. One `step` is one
refinement pass (ReStyle): the encoder sees each frame beside its current reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stylevid.config import FACTORS
from stylevid.encoder.backbone import FeaturePyramid
from stylevid.encoder.config import EncoderConfig
from stylevid.encoder.fusion import AttentionPool
from stylevid.shapes import assert_shape


@dataclass(frozen=True)
class Styles:
    """What the generator draws N videos' K frames with: identity [N, W], background [N, W] (shared by
    the K frames) or [N, K, W] (one per frame), pose and lighting [N, K, W]."""

    identity: torch.Tensor
    background: torch.Tensor
    pose: torch.Tensor
    lighting: torch.Tensor

    @property
    def shared_background(self) -> bool:
        return self.background.ndim == 2

    def detach(self) -> Styles:
        return Styles(*(getattr(self, f).detach() for f in ("identity", "background", "pose", "lighting")))

    def rows(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One generator row per frame: identity, background [N*K, W]; pose, lighting [N*K, 1, W]."""
        n, k, w = self.pose.shape
        background = self.background[:, None].expand(n, k, w) if self.shared_background else self.background
        return (
            self.identity[:, None].expand(n, k, w).reshape(n * k, w),
            background.reshape(n * k, w),
            self.pose.reshape(n * k, 1, w),
            self.lighting.reshape(n * k, 1, w),
        )


def render_styles(generator, styles: Styles) -> torch.Tensor:
    """Frames [N, K, 3, R, R] of styles: each frame its own generator row (differentiable)."""
    n, k = styles.pose.shape[:2]
    identity, background, pose, lighting = styles.rows()
    frames = generator.synthesize(identity, pose, lighting, background)
    return frames.reshape(n, k, *frames.shape[2:])


START_SIDE = 16
START_RIDGE = 10.0  # the ridge penalty of the first estimate's closed-form fit


def _mlp(dim: int, out: int) -> nn.Sequential:
    """A head whose output starts at zero: an untrained pass keeps the estimate it is given."""
    last = nn.Linear(dim, out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Linear(dim, dim), nn.LeakyReLU(0.2), last)


class Encoder(nn.Module):
    """Frames [N, K, 3, R, R] in [-1, 1] (N people or videos, K references each) -> Styles."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = c = config
        d, w = c.token_dim, c.w_dim
        self.backbone = FeaturePyramid(c)
        self.quality = nn.Linear(d, 1)
        self.identity_token = nn.Linear(d, d)  # fused, and compared across clips in training
        self.identity_pool = AttentionPool(d)
        self.identity_out = _mlp(d, w)
        self.background_token = nn.Linear(d, d)
        self.background_pool = AttentionPool(d)
        self.background_out = _mlp(d, w)
        self.background_frame = _mlp(d, w)  # references that do not share a background
        self.pose_out = _mlp(d, w)
        self.lighting_out = _mlp(d, w)
        # The first estimate: a linear map from the frame at START_SIDE² to every factor's whitened
        # coordinates, fitted in closed form (ridge) on the generator's samples by fit_statistics and
        # trained on from there. Refinement passes start from it instead of from the mean.
        side = min(START_SIDE, c.resolution)
        self.start = nn.Linear(3 * side * side, len(FACTORS) * w)
        nn.init.zeros_(self.start.weight)
        nn.init.zeros_(self.start.bias)
        # Each factor's style mean and principal axes over the generator's samples (fit_statistics):
        # where inversion starts, and the basis predictions are made in. Axis j is scaled by its
        # standard deviation, so each head's outputs are whitened coordinates of the style.
        self.register_buffer("w_mean", torch.zeros(len(FACTORS), w))
        self.register_buffer("w_axes", torch.eye(w).repeat(len(FACTORS), 1, 1))
        self.register_buffer("w_total_var", torch.full([len(FACTORS)], float(w)))

    def _stat(self, factor: str) -> tuple[torch.Tensor, torch.Tensor]:
        i = FACTORS.index(factor)
        return self.w_mean[i], self.w_axes[i]

    def _move(self, factor: str, current: torch.Tensor, whitened: torch.Tensor) -> torch.Tensor:
        """current + a step given in the factor's whitened principal coordinates."""
        return current + whitened @ self._stat(factor)[1].T

    @torch.no_grad()
    def fit_statistics(self, generator, samples: int = 8192, seed: int = 0, batch: int = 512) -> None:
        """Measure each factor's style mean and principal axes on `samples` frames of the generator's
        videos, and fit the first estimate (`start`) to them by ridge regression."""
        parts: dict[str, list[torch.Tensor]] = {f: [] for f in (*FACTORS, "pixels")}
        rng = torch.Generator().manual_seed(seed)
        for start in range(0, samples, batch):
            n = min(batch, samples - start)
            codes = generator.sample(n, seed=seed + start, frames=int(generator.config.anchor_spacing * 4))
            t = (torch.rand(n, 1, generator=rng) * codes.pose.duration).to(codes.identity.device)
            pose = generator.trajectory_styles("pose", codes.pose, t)
            lighting = generator.trajectory_styles("lighting", codes.lighting, t)
            frames = generator.synthesize(codes.identity, pose, lighting, codes.background)[:, 0]
            for factor, value in zip(
                (*FACTORS, "pixels"),
                (codes.identity, pose[:, 0], lighting[:, 0], codes.background, self.start_input(frames)),
                strict=True,
            ):
                parts[factor].append(value)
        styles = {f: torch.cat(v) for f, v in parts.items()}
        self._fit_moments(styles)
        self._fit_start(styles)

    def _fit_moments(self, styles: dict[str, torch.Tensor]) -> None:
        for i, factor in enumerate(FACTORS):
            w = styles[factor].double()
            centred = w - w.mean(0)
            variances, axes = torch.linalg.eigh(centred.T @ centred / (len(w) - 1))
            self.w_mean[i] = w.mean(0).float()
            self.w_axes[i] = (axes * variances.clamp_min(1e-8).sqrt()).float()
            self.w_total_var[i] = variances.sum().float()

    def _fit_start(self, styles: dict[str, torch.Tensor]) -> None:
        x = styles["pixels"].double()
        x_mean = x.mean(0)
        centred = x - x_mean
        targets = torch.cat([self.whitened(f, styles[f]).double() for f in FACTORS], dim=1)
        gram = centred.T @ centred + START_RIDGE * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        coef = torch.linalg.solve(gram, centred.T @ (targets - targets.mean(0)))
        self.start.weight.copy_(coef.T.float())
        self.start.bias.copy_((targets.mean(0) - x_mean @ coef).float())

    def start_input(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [..., 3, R, R] -> the first estimate's input [..., 3 * START_SIDE²]."""
        side = min(START_SIDE, self.config.resolution)
        flat = frames.reshape(-1, *frames.shape[-3:]).float()
        return F.adaptive_avg_pool2d(flat, side).reshape(*frames.shape[:-3], -1)

    def initial_styles(self, frames: torch.Tensor, shared_background: bool = True) -> Styles:
        """The first estimate of frames [N, K, 3, R, R]: per frame, linear in the pixels; identity (and a
        shared background) averaged over the K frames."""
        w = self.config.w_dim
        coords = self.start(self.start_input(frames)).split(w, dim=-1)  # [N, K, W] per factor
        u = dict(zip(FACTORS, coords, strict=True))
        mean = {f: self._stat(f)[0] for f in FACTORS}
        background = u["background"].mean(1) if shared_background else u["background"]
        return Styles(
            self._move("identity", mean["identity"], u["identity"].mean(1)),
            self._move("background", mean["background"], background),
            self._move("pose", mean["pose"], u["pose"]),
            self._move("lighting", mean["lighting"], u["lighting"]),
        )

    def mean_styles(self, n: int, k: int, shared_background: bool = True) -> Styles:
        """Every factor at its mean: where refinement starts."""
        mean = {f: self._stat(f)[0] for f in FACTORS}
        w = self.config.w_dim
        return Styles(
            mean["identity"].expand(n, w),
            mean["background"].expand(n, w) if shared_background else mean["background"].expand(n, k, w),
            mean["pose"].expand(n, k, w),
            mean["lighting"].expand(n, k, w),
        )

    def features(self, frames: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """Per-frame features [N, K, D] of frames beside their reconstructions, both [N, K, 3, R, R]."""
        n, k = frames.shape[:2]
        r = self.config.resolution
        assert_shape(frames, [n, k, 3, r, r], "frames to invert")
        assert_shape(recon, [n, k, 3, r, r], "reconstructions")
        x = torch.cat([frames, recon.to(frames.dtype)], dim=2).flatten(0, 1)
        return self.backbone(x).reshape(n, k, -1)

    def identity_tokens(self, features: torch.Tensor) -> torch.Tensor:
        return self.identity_token(features)

    def step(self, frames: torch.Tensor, recon: torch.Tensor, current: Styles) -> tuple[Styles, dict]:
        """One refinement pass: new Styles, and what training reads (identity tokens, fusion weights)."""
        features = self.features(frames, recon)
        quality = self.quality(features)[..., 0]
        tokens = self.identity_tokens(features)
        pooled, weights = self.identity_pool(tokens, quality)
        identity = self._move("identity", current.identity, self.identity_out(pooled))
        if current.shared_background:
            shared, _ = self.background_pool(self.background_token(features), quality)
            background = self._move("background", current.background, self.background_out(shared))
        else:
            background = self._move("background", current.background, self.background_frame(features))
        pose = self._move("pose", current.pose, self.pose_out(features))
        lighting = self._move("lighting", current.lighting, self.lighting_out(features))
        styles = Styles(identity, background, pose, lighting)
        return styles, {"identity_tokens": tokens, "weights": weights, "quality": quality}

    def relative_error(self, factor: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """||a - b||^2 over the factor's mean squared distance from its mean (per row): 1 for the mean."""
        return (a - b).square().sum(-1) / self.w_total_var[FACTORS.index(factor)]

    def whitened(self, factor: str, w: torch.Tensor) -> torch.Tensor:
        """w in the factor's whitened principal coordinates (a typical sample: about unit variance each)."""
        mean, axes = self._stat(factor)
        return torch.linalg.solve(axes, (w - mean).unsqueeze(-1)).squeeze(-1)
