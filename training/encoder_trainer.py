"""Training the encoder of a frozen generator (`stylevid train-encoder`).

Each step draws `identities` people from the generator, each in two clips of `references` frames
that share the identity code and differ in pose, lighting and background (so their codes are
known), and, with a dataset, `real_clips` real clips. Every refinement pass is trained on the
detached result of the one before (ReStyle). Snapshots are atomic (weights, then state, then
latest.json) and every random draw is a function of (seed, step), so a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from stylevid import checkpoint
from stylevid.atomic import write_atomically
from stylevid.encoder.api import MODULE, save_encoder
from stylevid.encoder.model import Encoder, Styles, render_styles
from stylevid.training import encoder_losses as losses
from stylevid.training.encoder_config import EncoderTrainConfig
from stylevid.training.optim_state import optimizer_from_tensors, optimizer_to_tensors
from stylevid.training.run_folder import LATEST, STATS, keep_ticks_up_to, read_latest

SAMPLE_FRAMES = 64  # the span of the sampled clips' times, in frames
# Most directions of a pose or lighting style change nothing in the frame (the generator reads a few
# numbers from them, e.g. three angles): their code term counts less, the re-render teaches them.
START_LR_SCALE = 0.01
CODE_WEIGHTS = {"identity": 1.0, "background": 1.0, "pose": 0.25, "lighting": 0.25}


class EncoderTrainer:
    def __init__(self, cfg: EncoderTrainConfig, generator, run_dir, dataset=None, device="cpu", network=""):
        self.device = torch.device(device)
        g = generator.generator
        cfg.encoder = dataclasses.replace(
            cfg.encoder,
            resolution=g.config.resolution,
            w_dim=g.config.w_dim,
            generator_sha256=generator.sha256,
            generator=str(network),
        )
        self.cfg, self.run_dir, self.dataset = cfg, Path(run_dir), dataset
        self.G = g.to(self.device).eval().requires_grad_(False)
        torch.manual_seed(cfg.seed)  # the encoder's initial weights are the seed's, whatever ran before
        self.encoder = Encoder(cfg.encoder).to(self.device)
        self.encoder.fit_statistics(self.G, seed=cfg.seed)
        # The first estimate is a closed-form fit: Adam's steps of about lr per weight would wreck its
        # small, exact weights, so it moves START_LR_SCALE as fast as the networks.
        start = list(self.encoder.start.parameters())
        rest = [p for name, p in self.encoder.named_parameters() if not name.startswith("start.")]
        self.opt = torch.optim.Adam(
            [{"params": rest}, {"params": start, "lr": cfg.lr * START_LR_SCALE}], lr=cfg.lr, betas=(0.9, 0.99)
        )
        from stylevid.metrics.lpips import load_lpips  # noqa: PLC0415

        self.lpips = load_lpips(cfg.lpips_net, device=self.device)
        self.teacher = None
        if dataset is not None and cfg.teacher != "none" and cfg.loss.real_identity:
            from stylevid.training.teachers import load_teacher  # noqa: PLC0415

            self.teacher = load_teacher(cfg.teacher, self.device)
        self.step_index = 0
        self.stats: dict[str, list[float]] = {}
        self._tick_started, self._tick_step = time.monotonic(), 0

    # -- batches -----------------------------------------------------------------------------------
    def _seed(self, stream: int) -> int:
        return (self.cfg.seed * 1_000_003 + self.step_index) * 4 + stream

    @torch.no_grad()
    def sample_batch(self) -> tuple[torch.Tensor, Styles, torch.Tensor]:
        """Frames [2P, K, 3, R, R] of P people in two clips each (rows p and P + p), their true
        styles (one background per clip) and each row's person [2P]."""
        p, k = self.cfg.identities, self.cfg.references
        codes = self.G.sample(2 * p, seed=self._seed(0), frames=SAMPLE_FRAMES)
        codes = codes.replace(identity=codes.identity[:p].repeat(2, 1))
        rng = torch.Generator().manual_seed(self._seed(1))
        t = (torch.rand(2 * p, k, generator=rng) * (SAMPLE_FRAMES - 1)).to(self.device)
        pose = self.G.trajectory_styles("pose", codes.pose, t)
        lighting = self.G.trajectory_styles("lighting", codes.lighting, t)
        styles = Styles(codes.identity, codes.background, pose, lighting)
        frames = self.G.synthesize(codes.identity, pose, lighting, codes.background)
        return frames, styles, torch.arange(p, device=self.device).repeat(2)

    def real_batch(self) -> torch.Tensor | None:
        if self.dataset is None or not self.cfg.real_clips:
            return None
        rng = np.random.default_rng(self._seed(2))
        picks = rng.choice(len(self.dataset), size=min(self.cfg.real_clips, len(self.dataset)), replace=False)
        return torch.stack([self.dataset[int(i)]["frames"] for i in picks]).to(self.device)

    # -- losses ------------------------------------------------------------------------------------
    def _passes(self, frames: torch.Tensor):
        """Yield (styles, aux) of each refinement pass, from the first estimate on."""
        styles = self.encoder.initial_styles(frames)
        with torch.no_grad():
            recon = render_styles(self.G, styles)
        for i in range(self.cfg.encoder.iterations):
            # The first pass trains the first estimate too; later ones start from a detached result.
            styles, aux = self.encoder.step(frames, recon, styles if i == 0 else styles.detach())
            yield styles, aux
            with torch.no_grad():
                recon = render_styles(self.G, styles)

    def _record(self, name: str, value: torch.Tensor) -> None:
        self.stats.setdefault(name, []).append(float(value.detach()))

    def _synthetic_loss(self) -> torch.Tensor:
        w = self.cfg.loss
        frames, true, people = self.sample_batch()
        p, k = self.cfg.identities, self.cfg.references
        clips = torch.arange(2 * p, device=self.device)[:, None].expand(-1, k).reshape(-1)
        total = 0
        last = self.cfg.encoder.iterations - 1
        for i, (styles, aux) in enumerate(self._passes(frames)):
            errors = losses.code_error(self.encoder, styles, true)
            terms = {"code": sum(CODE_WEIGHTS[f] * e for f, e in errors.items()) / sum(CODE_WEIGHTS.values())}
            render = render_styles(self.G, styles)
            terms["l2"], terms["lpips"] = losses.reconstruction(render, frames, self.lpips)
            tokens = aux["identity_tokens"].flatten(0, 1)
            terms["contrast"] = losses.identity_contrast(tokens, people.repeat_interleave(k), clips)
            terms["spread"] = losses.identity_spread(self.encoder, styles.identity[:p], styles.identity[p:])
            if w.swap and i == last:  # each clip's scene with the other clip's identity code
                swapped = dataclasses.replace(styles, identity=styles.identity.roll(p, dims=0))
                l2, lp = losses.reconstruction(render_styles(self.G, swapped), frames, self.lpips)
                terms["swap"] = l2 + lp
            loss = sum(getattr(w, name) * value for name, value in terms.items())
            total = total + loss / self.cfg.encoder.iterations
        for name, value in terms.items():  # the last pass: what inversion returns
            self._record(f"Loss/encoder/{name}", value)
        for factor, value in errors.items():  # relative to the factor's variance: an NMSE
            self._record(f"Metrics/nmse_{factor}", value)
        return total

    def _real_loss(self, frames: torch.Tensor) -> torch.Tensor:
        w = self.cfg.loss
        total = 0
        for styles, _ in self._passes(frames):
            render = render_styles(self.G, styles)
            l2, lp = losses.reconstruction(render, frames, self.lpips)
            terms = {"l2": l2, "lpips": lp, "latent": losses.latent_excess(self.encoder, styles)}
            weights = {"l2": w.l2, "lpips": w.lpips, "latent": w.latent}
            if self.teacher is not None:
                a = self.teacher(render.flatten(0, 1))["identity"]
                b = self.teacher(frames.flatten(0, 1))["identity"]
                d = self.teacher.distance("identity", a, b)
                terms["identity"], weights["identity"] = d[~d.isnan()].mean().nan_to_num(0.0), w.real_identity
            loss = sum(weights[name] * value for name, value in terms.items())
            total = total + loss / self.cfg.encoder.iterations
        for name, value in terms.items():
            self._record(f"Loss/real/{name}", value)
        return total

    def step(self) -> None:
        self.encoder.train().requires_grad_(True)
        self.opt.zero_grad(set_to_none=True)
        loss = self._synthetic_loss()
        real = self.real_batch()
        if real is not None and self.cfg.loss.real:
            loss = loss + self.cfg.loss.real * self._real_loss(real)
        if ~torch.isfinite(loss):  # the bad case tested, so a device stand-in's 0 / False passes
            raise FloatingPointError(
                f"encoder step {self.step_index}: the loss is {float(loss)}; lower --lr or resume from the"
                f" last snapshot in {self.run_dir}"
            )
        loss.backward()
        self.opt.step()
        self.step_index += 1

    # -- bookkeeping -------------------------------------------------------------------------------
    def tick(self) -> dict:
        now = time.monotonic()
        record = {
            "tick": self.step_index // self.cfg.tick_steps,
            "step": self.step_index,
            "sec_per_step": (now - self._tick_started) / max(self.step_index - self._tick_step, 1),
            "stats": {name: sum(v) / len(v) for name, v in sorted(self.stats.items())},
        }
        self.stats.clear()
        self._tick_started, self._tick_step = now, self.step_index
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / STATS, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")
        writer = self._tensorboard()
        for name, value in record["stats"].items():
            writer.add_scalar(name, value, self.step_index)
        writer.add_scalar("progress/sec_per_step", record["sec_per_step"], self.step_index)
        writer.flush()
        return record

    def _tensorboard(self):
        if not hasattr(self, "_writer"):
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

            self._writer = SummaryWriter(
                str(self.run_dir / "tensorboard"), purge_step=getattr(self, "_purge_step", None)
            )
        return self._writer

    def snapshot(self) -> Path:
        """encoder-STEP.safetensors (loadable by load_encoder), its -state file, then latest.json."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        name = f"encoder-{self.step_index:07d}"
        info = {"step": self.step_index, "training": self.cfg.to_dict()}
        weights = save_encoder(self.run_dir / f"{name}.safetensors", self.encoder, info)
        tensors, meta = optimizer_to_tensors(self.opt)
        checkpoint.save_checkpoint(
            self.run_dir / f"{name}-state.safetensors", {"opt": tensors}, {"optimizer": meta}, info
        )
        latest = {"snapshot": weights.name, "state": f"{name}-state.safetensors", "step": self.step_index}
        write_atomically(self.run_dir / LATEST, json.dumps(latest, indent=2).encode())
        return weights

    @classmethod
    def resume(cls, run_dir, generator, dataset=None, device="cpu", network="", steps: int | None = None):
        """Continue the run in run_dir exactly where its latest snapshot stopped (steps: a new length)."""
        run_dir = Path(run_dir)
        latest = read_latest(run_dir, progress="")
        weights = checkpoint.load_checkpoint(run_dir / latest["snapshot"])
        state = checkpoint.load_checkpoint(run_dir / latest["state"])
        cfg = EncoderTrainConfig.from_dict(weights.metadata["training"])
        if steps is not None:
            cfg.steps = steps
        trainer = cls(cfg, generator, run_dir, dataset, device, network or cfg.encoder.generator)
        if trainer.cfg.encoder.generator_sha256 != weights.config["encoder"]["generator_sha256"]:
            raise ValueError(
                f"{run_dir} trains an encoder for another generator (weights SHA-256"
                f" {weights.config['encoder']['generator_sha256'][:12]}...); resume it with that --network"
            )
        checkpoint.load_module_state(trainer.encoder, weights.tensors[MODULE], MODULE)
        trainer.encoder.to(trainer.device)
        optimizer_from_tensors(trainer.opt, state.tensors.get("opt", {}), state.config["optimizer"])
        trainer.step_index = trainer._tick_step = latest["step"]
        trainer._purge_step = trainer.step_index + 1
        keep_ticks_up_to(run_dir / STATS, trainer.step_index // cfg.tick_steps)
        return trainer

    def train(self, progress: bool = True, seconds: float | None = None) -> Path | None:
        """Run to cfg.steps (or `seconds`), ticking every tick_steps and snapshotting every snapshot_ticks."""
        from tqdm import tqdm  # noqa: PLC0415

        deadline = None if seconds is None else time.monotonic() + seconds
        bar = tqdm(total=self.cfg.steps, initial=self.step_index, unit="step", disable=not progress)
        last = None
        while self.step_index < self.cfg.steps:
            self.step()
            bar.update(1)
            out_of_time = deadline is not None and time.monotonic() > deadline
            done = self.step_index >= self.cfg.steps or out_of_time
            if self.step_index % self.cfg.tick_steps == 0 or done:
                record = self.tick()
                nmse = record["stats"].get("Metrics/nmse_identity")
                if nmse is not None:
                    bar.set_postfix(identity_nmse=f"{nmse:.3f}", sec_per_step=f"{record['sec_per_step']:.2f}")
                tick = self.step_index // self.cfg.tick_steps
                if tick % self.cfg.snapshot_ticks == 0 or done:
                    last = self.snapshot()
            if out_of_time:
                break
        bar.close()
        return last
