"""The training loop: a Trainer with short methods (step, tick, snapshot, resume) over phases as data."""

from __future__ import annotations

import copy
import json
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stylevid import checkpoint
from stylevid.atomic import write_atomically
from stylevid.codes import Codes
from stylevid.data.clip_times import sample_clip_batch
from stylevid.networks import Generator, TemporalDiscriminator
from stylevid.networks.face3d import POSE_QUANTILES
from stylevid.networks.layers import full_precision
from stylevid.options import UsageError
from stylevid.training import losses, pairs
from stylevid.training.augment import AdaptiveProbability, augment_clips
from stylevid.training.config import TrainConfig
from stylevid.training.distributed import ProcessGroup
from stylevid.training.imitate import Imitation
from stylevid.training.loader import EpochItems, StepBatches
from stylevid.training.optim_state import optimizer_from_tensors, optimizer_to_tensors
from stylevid.training.run_folder import LATEST, STATS, keep_ticks_up_to, read_latest
from stylevid.training.stop import ignore_in_worker
from stylevid.training.teachers import load_teacher, teacher_spread
from stylevid.training.value_prior import PRIOR_TIMES, PRIOR_VIDEOS, ValuePrior, renderer_quantiles

# With several processes, how often (in steps) they agree on whether to stop or save (Trainer._decide).
DECIDE_STEPS = 8


class NonFiniteLoss(RuntimeError):
    """A loss or the weights became NaN or infinite: the run stops and keeps its last good snapshot."""


@dataclass
class Phase:
    """One optimisation phase: which loss, which parameters, how often (lazy regularisation).

    `run(generator, rng)` draws device-side randomness from the torch generator and host-side
    bookkeeping (clip times, seeds) from the NumPy one; both derive from (seed, step, phase).
    """

    name: str
    run: Callable[[torch.Generator, np.random.Generator], torch.Tensor]
    modules: list[nn.Module]
    optimizer: torch.optim.Optimizer
    interval: int = 1


def _lazy(lr: float, betas, interval: int | None) -> dict:
    # Lazy regularisation runs every `interval` steps; scaling lr and betas keeps the effective
    # optimiser the same as if the regulariser ran every step (StyleGAN2, appendix B).
    ratio = interval / (interval + 1) if interval else 1.0
    return {"lr": lr * ratio, "betas": tuple(b**ratio for b in betas)}


class Trainer:
    """Trains G (with its factor head) and the temporal D on a clip dataset; only rank 0 writes."""

    def __init__(
        self,
        config: TrainConfig,
        dataset,
        run_dir: str | Path,
        process: ProcessGroup | None = None,
        workers: int = 0,
        preset: str | None = None,
    ):
        self.cfg, self.run_dir, self.preset = config, Path(run_dir), preset
        self.process = process or ProcessGroup()
        if config.batch % self.process.world:
            raise ValueError(f"batch={config.batch} must divide evenly over {self.process.world} processes")
        self.dataset, self.workers = dataset, workers
        device = self.process.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # every process starts from the same weights
            self.G = Generator(config.model.generator).to(device)
            self.D = TemporalDiscriminator(config.model.discriminator).to(device)
            if self.G.pose_marginal:  # TrainConfig allows it only with the renderer's light, so its data
                self.G.face.set_pose_quantiles(renderer_quantiles(POSE_QUANTILES))
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        k = config.model.discriminator.frames
        self.frames_per_clip = k
        self.teacher, self.spread = None, None
        light = config.model.generator.light
        self.value_prior = ValuePrior(light, device) if config.loss.value_prior > 0 else None
        if config.disentangle.active:
            if (config.batch // self.process.world) % 2:
                raise ValueError(
                    f"batch={config.batch} over {self.process.world} processes leaves an odd number of"
                    " clips per process; pairs must not straddle processes: use a batch divisible by"
                    f" {2 * self.process.world}"
                )
            # The spread is measured on the CPU, once: no device sync, and the same on every device.
            teacher = load_teacher(config.disentangle.teacher, "cpu")
            self.spread = teacher_spread(teacher, _spread_frames(dataset))
            self.teacher = teacher.to(device)
        # TrainConfig refuses the term without the face layer, the renderer's light or the synthetic teacher.
        self.imitation = Imitation(self.teacher, light) if config.loss.imitate > 0 else None
        # On CUDA, Adam's fused kernel: one launch per optimiser step instead of several per tensor
        # (the per-tensor launches dominate a small model's step). Its state is the plain Adam's,
        # so snapshots resume on either device.
        fused = True if device.type == "cuda" else None
        self.opt_G = torch.optim.Adam(self.G.parameters(), eps=1e-8, fused=fused)
        self.opt_D = torch.optim.Adam(self.D.parameters(), eps=1e-8, fused=fused)
        self._set_hyperparameters()
        self.phases = [
            Phase("G", self._generator_loss, [self.G], self.opt_G),
            Phase("D", self._discriminator_loss, [self.D], self.opt_D),
        ]
        if config.loss.r1_gamma > 0:
            self.phases.append(Phase("D_r1", self._r1_loss, [self.D], self.opt_D, config.r1_interval))
        aug = config.augment
        self.ada = (
            AdaptiveProbability(aug.target, aug.speed_kimg, config.batch, aug.interval, device=device)
            if aug.enabled
            else None
        )
        self.step_index = 0
        self.tick_index = 0
        self.nimg = 0  # real clips shown to D so far, over all processes (a count: batch may change)
        # Per-step values stay on the device until a tick averages them: no host sync per step.
        # `stats` holds per-clip sums (averaged per clip), `means` values averaged as they are.
        self.stats: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.means: dict[str, list[torch.Tensor]] = defaultdict(list)
        # Per phase, the first step whose loss was not finite (-1: none) and that loss, kept on the
        # device and read at the tick (see _check_finite).
        self._nonfinite: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._batches: Iterator | None = None
        self._real: tuple | None = None
        self._tick_started = (time.monotonic(), 0)
        self._snapshot_time = time.monotonic()
        self._purge_step: int | None = None
        self.stopped = False  # whether the last train() stopped on its `stop` or time limit

    def _networks(self) -> dict[str, nn.Module]:
        """The networks a snapshot holds (the frozen teacher is the package's, not the run's)."""
        return {"G": self.G, "G_ema": self.G_ema, "D": self.D}

    def _set_hyperparameters(self) -> None:
        """Learning rates and betas from the config (also after loading optimizer state at resume)."""
        cfg = self.cfg
        for opt, lr, interval in ((self.opt_G, cfg.lr_g, None), (self.opt_D, cfg.lr_d, cfg.r1_interval)):
            for group in opt.param_groups:
                group.update(_lazy(lr, cfg.betas, interval))

    # ---- randomness -----------------------------------------------------------------------

    def _generator_for(self, step: int, stream: int) -> torch.Generator:
        # All randomness of a step derives from (seed, step): resuming needs no RNG state, and
        # every process draws the same global batch and keeps its rows.
        return torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + step) * 8 + stream)

    def _rng_for(self, step: int, stream: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.cfg.seed, step, stream]))

    # ---- data -----------------------------------------------------------------------------

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's real clips [b, K, 3, R, R] and times [b, K] (the same for D and its R1)."""
        if self._real is None or self._real[0] != self.step_index:
            if self._batches is None:
                self._batches = self._iterate_real(self.nimg)
            frames, times = next(self._batches)
            # From the loader's pinned memory (on CUDA) the copies do not make the host wait.
            device = self.process.device
            self._real = (
                self.step_index,
                frames.to(device, non_blocking=True),
                times.to(device, non_blocking=True),
            )
        return self._real[1], self._real[2]

    def _iterate_real(self, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rows = self.process.rows(self.cfg.batch)
        loader = torch.utils.data.DataLoader(
            EpochItems(self.dataset),
            batch_sampler=StepBatches(len(self.dataset), self.cfg.batch, rows, self.cfg.seed, start),
            num_workers=self.workers,
            worker_init_fn=ignore_in_worker,
            pin_memory=self.process.device.type == "cuda",
        )
        for batch in loader:
            yield batch["frames"], batch["times"]

    # ---- losses (each returns this process's share of the global mean) -------------------

    def _sample_fake(
        self, rng: np.random.Generator, changed: list[str] | None = None
    ) -> tuple[Codes, torch.Tensor]:
        """Codes of the whole global batch and this process's clip times [b, K].

        Times come from the loader's sampler over videos of cfg.video_frames frames: the same gap
        distribution as real clips, and starts anywhere G will be asked to render. With `changed`
        (one factor per pair) the batch is a paired batch (training/pairs.py).
        """
        cfg, rows = self.cfg, self.process.rows(self.cfg.batch)
        times = sample_clip_batch(cfg.batch, cfg.video_frames, self.frames_per_clip, cfg.max_gap, rng)
        seed = int(rng.integers(2**31 - 1))
        codes = self.G.sample(cfg.batch, seed=seed, frames=int(times.max()) + 1)
        if changed is not None:
            codes, times = pairs.paired_codes(codes, changed), pairs.paired_times(times)
        t = torch.from_numpy(times[rows]).float().to(self.process.device, non_blocking=True)
        return codes, t

    def _augment(self, clips: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.ada is None:
            return clips
        return augment_clips(clips, self.ada.p, generator, self.process.rows(self.cfg.batch), self.cfg.batch)

    def _generator_loss(self, generator: torch.Generator, rng: np.random.Generator) -> torch.Tensor:
        cfg, rows = self.cfg, self.process.rows(self.cfg.batch)
        ramp = cfg.disentangle.ramp(self.nimg / 1000) if self.teacher is not None else 0.0
        changed = pairs.changed_factors(cfg.batch // 2, self.step_index) if ramp > 0 else None
        codes_all, t = self._sample_fake(rng, changed)
        codes = codes_all[rows]
        frames, parts = self.G(codes, t, layers=True)
        if changed is None:
            per_clip = losses.gan_generator(self.D(self._augment(frames, generator), t))
        else:  # minibatch-std groups of unrelated clips, as in a real batch
            order = pairs.discriminator_order(len(frames))
            per_clip = losses.gan_generator(self.D(self._augment(frames[order], generator), t[order]))
        self._record("loss/G_adversarial", per_clip)
        self._track_means(codes, parts)
        loss = per_clip.sum() / cfg.batch
        if self.value_prior is not None:
            loss = loss + self._value_prior_term(rng)
        if self.imitation is not None:
            loss = loss + self._imitation_term(frames, parts["values"])
        return loss if changed is None else loss + self._pair_terms(frames, changed, ramp)

    def _value_prior_term(self, rng: np.random.Generator) -> torch.Tensor:
        """The face layer's values on a batch of codes of their own against the data's distribution, as
        this process's share (every process draws the same batch; their gradients are summed)."""
        videos, frames = PRIOR_VIDEOS, self.cfg.video_frames
        codes = self.G.sample(videos, seed=int(rng.integers(2**31 - 1)), frames=frames)
        t = torch.from_numpy(rng.uniform(0, frames - 1, (videos, PRIOR_TIMES))).float()
        t = t.to(self.process.device, non_blocking=True)
        with full_precision(self.process.device):
            distance = self.value_prior(self.G.physical_values(codes, t))
        self.means["loss/value_prior"].append(distance.detach())
        return self.cfg.loss.value_prior * distance / self.process.world

    def _imitation_term(self, frames: torch.Tensor, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each frame's teacher reading against the pose and light the face layer drew in it (loss share);
        values: the face layer's, name -> [b, K], as the generator's forward returned them."""
        per_frame = self.imitation(frames.flatten(0, 1), {k: v.reshape(-1) for k, v in values.items()})
        per_clip = per_frame.reshape(frames.shape[:2]).mean(1)
        self._record("loss/imitate", per_clip)
        return self.cfg.loss.imitate * per_clip.sum() / self.cfg.batch

    def _pair_terms(self, frames: torch.Tensor, changed: list[str], ramp: float) -> torch.Tensor:
        """The teacher terms of this process's pairs (frames [b, K, ...] interleaved), as a loss share."""
        cfg, d = self.cfg, self.cfg.disentangle
        rows = self.process.rows(cfg.batch)
        local = changed[rows.start // 2 : rows.stop // 2]
        b, k = frames.shape[:2]
        # The teacher's convolutions may run in bfloat16; its readings and the distances in float32.
        readings = {f: r.float().reshape(b, k, -1) for f, r in self.teacher(frames.flatten(0, 1)).items()}
        distances = losses.pair_distances(
            self.teacher,
            {f: r[0::2] for f, r in readings.items()},
            {f: r[1::2] for f, r in readings.items()},
            self.spread,
        )
        total = 0.0
        if d.keep:
            keep = losses.teacher_keep(distances, local).repeat_interleave(2)
            self._record("loss/keep", keep)
            total = total + d.keep * ramp * keep.sum() / cfg.batch
        if d.move:
            move = losses.teacher_move(distances, local, d.margin).repeat_interleave(2)
            self._record("loss/move", move)
            total = total + d.move * ramp * move.sum() / cfg.batch
        if d.contrast:
            # Over the global batch: each process adds the whole loss, its gradient reaching this
            # process's clips only (gather), so the sum over processes is the one-process gradient.
            embeddings = self.process.gather(readings["identity"].nanmean(dim=1))
            keys = pairs.identity_keys(changed).to(frames.device, non_blocking=True)
            contrast = losses.teacher_contrast(embeddings, keys, self.spread["identity"])
            self._record("loss/contrast", contrast[rows])
            total = total + d.contrast * ramp * contrast.sum() / cfg.batch
        return total

    def _discriminator_loss(self, generator: torch.Generator, rng: np.random.Generator) -> torch.Tensor:
        cfg = self.cfg
        with torch.no_grad():
            codes_all, t_fake = self._sample_fake(rng)
            fake = self.G(codes_all[self.process.rows(cfg.batch)], t_fake)
        fake_loss = losses.gan_discriminator(self.D(self._augment(fake, generator), t_fake), real=False)
        real, t_real = self._real_batch()
        scores = self.D(self._augment(real, generator), t_real)
        real_loss = losses.gan_discriminator(scores, real=True)
        if self.ada is not None:
            # Summed over processes on the device; the controller reads it only when it adjusts p.
            signs = self.process.sum_(torch.sign(scores["video"].detach()).float().sum().reshape(1))
            self.ada.observe(signs[0], cfg.batch)
        self._record("loss/D_fake", fake_loss)
        self._record("loss/D_real", real_loss)
        self._record("scores/real", scores["video"].detach())
        return (fake_loss + real_loss).sum() / cfg.batch

    def _r1_loss(self, generator: torch.Generator, rng: np.random.Generator) -> torch.Tensor:
        real, t_real = self._real_batch()
        real = real.detach().requires_grad_(True)
        penalty = losses.r1_penalty(self.D(self._augment(real, generator), t_real), real)
        self._record("loss/r1", penalty)
        return penalty.sum() * (self.cfg.loss.r1_gamma / 2) * self.cfg.r1_interval / self.cfg.batch

    # ---- bookkeeping ----------------------------------------------------------------------

    def _record(self, name: str, per_clip: torch.Tensor) -> None:
        """Keep this process's sum of a per-clip value [b]; tick() averages it over all processes."""
        self.stats[name].append(per_clip.detach().float().sum())

    @torch.no_grad()
    def _track_means(self, codes: Codes, parts: dict) -> None:
        values = {
            "identity": codes.identity,
            "background": codes.background,
            "pose": parts["pose"],
            "lighting": parts["lighting"],
        }
        for factor, w in values.items():
            flat = w.detach().float().reshape(-1, w.shape[-1])
            count = torch.full((1,), float(flat.shape[0]), device=flat.device)
            total = self.process.sum_(torch.cat([flat.sum(0), count]))
            getattr(self.G, factor).track_mean(total[:-1] / total[-1])

    @torch.no_grad()
    def _update_ema(self) -> None:
        ema_nimg = self.cfg.ema_kimg * 1000
        if self.cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.nimg * self.cfg.ema_rampup)
        beta = 0.5 ** (self.cfg.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    # ---- the loop -------------------------------------------------------------------------

    def gradients(self, index: int) -> torch.Tensor:
        """Run phase `index` of this step up to its gradients (summed over processes).

        Returns this process's share of the loss, on the device: nothing here reads a value on the
        host, so the host can queue the next phase while the device works. A loss that is not
        finite is noted on the device and reported at the tick (_check_finite).
        """
        phase = self.phases[index]
        for module in phase.modules:
            module.requires_grad_(True)
        phase.optimizer.zero_grad(set_to_none=True)
        with self._precision():
            loss = phase.run(
                self._generator_for(self.step_index, index), self._rng_for(self.step_index, index)
            )
        self._watch(phase.name, loss.detach())
        loss.backward()
        for module in phase.modules:
            self.process.sum_gradients(module.parameters())
            module.requires_grad_(False)
        return loss.detach()

    def _watch(self, name: str, loss: torch.Tensor) -> None:
        """Note on the device the first step at which phase `name`'s loss is not finite."""
        if name not in self._nonfinite:
            none = torch.full((), -1, dtype=torch.int64, device=loss.device)
            self._nonfinite[name] = (none, torch.zeros((), device=loss.device))
        first, value = self._nonfinite[name]
        new = ~torch.isfinite(loss) & (first < 0)
        self._nonfinite[name] = (
            torch.where(new, self.step_index, first),
            torch.where(new, loss.float(), value),
        )

    def _check_finite(self) -> None:
        """Stop (every process alike) if a loss since the run started was not finite: one host read."""
        if not self._nonfinite:
            return
        names = sorted(self._nonfinite)
        first = torch.stack([self._nonfinite[n][0] for n in names])
        values = torch.stack([self._nonfinite[n][1] for n in names])
        anywhere = self.process.sum_((first >= 0).float())
        first, values, anywhere = first.tolist(), values.tolist(), anywhere.tolist()
        if not any(anywhere):
            return
        rows = zip(first, names, values, anywhere, strict=True)
        local = [(step, name, value) for step, name, value, _ in rows if step >= 0]
        if local:
            step, name, value = min(local)
            what = f"step {step}: the {name} loss is {value}"
        else:
            elsewhere = ", ".join(name for name, flag in zip(names, anywhere, strict=True) if flag)
            what = f"another process's {elsewhere} loss is not finite"
        raise NonFiniteLoss(
            f"{what}; training stopped at step {self.step_index} with the last good snapshot kept in "
            f"{self.run_dir}. {self._recovery_advice()}"
        )

    def _recovery_advice(self) -> str:
        cfg = self.cfg
        return (
            f"Resume with a lower learning rate or a stronger R1, e.g. stylevid train --resume "
            f"{self.run_dir} --lr-g {cfg.lr_g / 2:g} --lr-d {cfg.lr_d / 2:g} "
            f"--r1-gamma {cfg.loss.r1_gamma * 2:g}"
        )

    def step(self) -> None:
        """One iteration: every phase whose interval divides the step runs once."""
        for index, phase in enumerate(self.phases):
            if self.step_index % phase.interval:
                continue
            self.gradients(index)
            phase.optimizer.step()
            if phase.name == "G":
                self._update_ema()
        if self.ada is not None and self.step_index % self.cfg.augment.interval == 0:
            rt = self.ada.update()
            if rt is not None:
                self.means["augment/rt"].append(rt)
            self.means["augment/p"].append(self.ada.p)
        self.step_index += 1
        self.nimg += self.cfg.batch

    @property
    def _amp(self) -> bool:
        return self.cfg.mixed_precision and self.process.device.type == "cuda"

    def _precision(self):
        """bfloat16 autocast when mixed precision is on (CUDA), else float32 throughout."""
        if self._amp:
            return torch.autocast(self.process.device.type, dtype=torch.bfloat16)
        return full_precision(self.process.device)

    def _averages(self) -> dict[str, float]:
        """Each recorded value's mean per clip since the last tick, over all processes (one sync)."""
        names = sorted(name for name, values in self.stats.items() if values)
        if not names:
            return {}
        sums = torch.stack([torch.stack(self.stats[name]).sum() for name in names])
        counts = [len(self.stats[name]) * self.cfg.batch for name in names]
        totals = self.process.sum_(sums).tolist()
        return {name: total / count for name, total, count in zip(names, totals, counts, strict=True)}

    def tick(self) -> dict:
        """Average the stats since the last tick, log them (rank 0) and start a new tick."""
        started, nimg0 = self._tick_started
        self._check_finite()
        stats = self._averages()
        means = {name: torch.stack(v).float().mean() for name, v in self.means.items() if v}
        if means:
            stats.update(zip(means, torch.stack(list(means.values())).tolist(), strict=True))
        now = time.monotonic()
        self.tick_index += 1
        record = {
            "tick": self.tick_index,
            "step": self.step_index,
            "kimg": self.nimg / 1000,
            "sec_per_kimg": (now - started) / max((self.nimg - nimg0) / 1000, 1e-9),
            "memory_mib": _peak_memory_mib(self.process.device),
            "stats": dict(sorted(stats.items())),
        }
        self.stats.clear()
        self.means.clear()
        self._tick_started = (now, self.nimg)
        if self.process.is_main:
            self._log(record)
            writer = self._tensorboard()
            for name, value in record["stats"].items():
                writer.add_scalar(name, value, self.nimg)
            writer.add_scalar("progress/sec_per_kimg", record["sec_per_kimg"], self.nimg)
            writer.add_scalar("progress/memory_mib", record["memory_mib"], self.nimg)
            writer.flush()
        return record

    def _log(self, record: dict) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / STATS, "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    def _tensorboard(self):
        if not hasattr(self, "_writer"):
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

            # After a resume, purge_step hides the events a crashed run logged past its snapshot.
            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self._purge_step)
        return self._writer

    def _nonfinite_weights(self) -> bool:
        """Whether any weight or buffer of the networks is NaN or infinite (one host read)."""
        tensors = [t for m in self._networks().values() for t in m.state_dict().values()]
        return bool(torch.stack([~torch.isfinite(t).all() for t in tensors if t.is_floating_point()]).any())

    def snapshot(self) -> Path | None:
        """Write weights + training state atomically, then point latest.json at them (rank 0 only).

        Weights that are not finite are not written: latest.json keeps naming the last good snapshot.
        """
        self._check_finite()
        self._snapshot_time = time.monotonic()
        if not self.process.is_main:
            return None
        if self._nonfinite_weights():
            raise NonFiniteLoss(
                f"step {self.step_index}: the weights hold NaN or infinite values; they were not saved and "
                f"{self.run_dir / LATEST} still names the last good snapshot. {self._recovery_advice()}"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.G_ema.pose_marginal:
            self.G_ema.calibrate_pose(self.cfg.video_frames)  # the population's statistics, not a batch's
        name = f"snapshot-{self.nimg:09d}"
        config = {"model": self.cfg.model.to_dict(), "training": self.cfg.to_dict()}
        info = {"step": self.step_index, "kimg": self.nimg / 1000, "tick": self.tick_index, "nimg": self.nimg}
        weights = checkpoint.save_checkpoint(
            self.run_dir / f"{name}.safetensors",
            self._networks(),
            config,
            info,
        )
        optimizers = {"opt_G": self.opt_G, "opt_D": self.opt_D}
        tensors, meta = {}, {}
        for key, opt in optimizers.items():
            tensors[key], meta[key] = optimizer_to_tensors(opt)
        # The data's path and index digest: a resume given other data can tell (see resume).
        origin = {"preset": self.preset, "dataset": getattr(self.dataset, "signature", None)}
        state = {**info, **origin, "ada": None if self.ada is None else self.ada.state()}
        checkpoint.save_checkpoint(
            self.run_dir / f"{name}-state.safetensors", tensors, {"optimizers": meta}, state
        )
        # Written last: a crash before this line leaves latest.json naming the previous snapshot.
        latest = {"snapshot": f"{name}.safetensors", "state": f"{name}-state.safetensors", **info, **origin}
        write_atomically(self.run_dir / LATEST, json.dumps(latest, indent=2).encode())
        self._write_samples(name)
        return weights

    def _write_samples(self, name: str) -> None:
        """The same 8 videos at every snapshot: an mp4 grid beside it, and frames in TensorBoard.

        A failure here (a codec, a full disk) is reported and training goes on: the snapshot is saved.
        """
        from stylevid.api import VideoGenerator  # noqa: PLC0415
        from stylevid.video import make_grid, save_video  # noqa: PLC0415

        gen = VideoGenerator(self.G_ema, self.cfg.model)
        video = gen.render(gen.sample(8, seed=0, frames=16), 16).cpu()
        path = self.run_dir / f"{name}-samples.mp4"
        try:
            save_video(video, path, fps=8, nrow=4)
        except Exception as exc:  # noqa: BLE001 -- whatever the codec raises, the run must go on
            warnings.warn(
                f"could not write the sample video {path} ({exc}); training continues", stacklevel=2
            )
        # Rows: videos; columns: every 4th frame, so motion shows in a still image.
        sheet = make_grid(video[:, ::4].flatten(0, 1), nrow=4)
        self._tensorboard().add_image("samples", (sheet + 1) / 2, self.nimg)

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        dataset,
        process: ProcessGroup | None = None,
        workers: int = 0,
        allow_new_data: bool = False,
        **changes,
    ) -> Trainer:
        """A Trainer continuing exactly where the run's latest snapshot stopped, on the same data.

        `changes` (lr_g, lr_d, r1_gamma, batch, kimg; None keeps) apply from the snapshot on and are
        logged to stats.jsonl. Data other than the run's (by its index digest) is refused unless
        `allow_new_data`, and then logged too. Ticks the run logged after its snapshot (it crashed)
        are dropped from stats.jsonl and hidden in TensorBoard, so they are not written twice.
        """
        run_dir = Path(run_dir)
        latest = read_latest(run_dir)
        weights = checkpoint.load_checkpoint(run_dir / latest["snapshot"])
        state = checkpoint.load_checkpoint(run_dir / latest["state"])
        config, changed = TrainConfig.from_dict(weights.config["training"]).with_changes(**changes)
        saved, given = state.metadata.get("dataset"), getattr(dataset, "signature", None)
        if saved and given and saved != given:
            if saved["digest"] != given["digest"] and not allow_new_data:
                raise UsageError(
                    f"{run_dir} was trained on {saved['path']}, but {given['path']} holds other videos (its"
                    " index differs); a resume continues exactly on the run's data: pass that, or"
                    " --allow-new-data (allow_new_data=True) to continue on the new data"
                )
            changed["data"] = [saved, given]
        trainer = cls(config, dataset, run_dir, process, workers, state.metadata.get("preset"))
        device = trainer.process.device
        for name, module in trainer._networks().items():
            checkpoint.load_module_state(module, weights.tensors[name], name)
            module.to(device)
        for key, opt in (("opt_G", trainer.opt_G), ("opt_D", trainer.opt_D)):
            optimizer_from_tensors(opt, state.tensors.get(key, {}), state.config["optimizers"][key])
        trainer._set_hyperparameters()  # the loaded state carries the old learning rates
        info = state.metadata
        trainer.step_index, trainer.tick_index = info["step"], info["tick"]
        trainer.nimg = info.get("nimg", info["step"] * config.batch)
        if trainer.ada is not None:
            # Older snapshots saved p alone.
            trainer.ada.load_state(
                info.get("ada") or {"p": info.get("ada_p") or 0.0, "signs": 0.0, "count": 0}
            )
        trainer._tick_started = (time.monotonic(), trainer.nimg)
        trainer._purge_step = trainer.nimg + 1  # events at nimg itself were logged before the snapshot
        if trainer.process.is_main:
            keep_ticks_up_to(run_dir / STATS, trainer.tick_index)
            event = {"tick": trainer.tick_index, "step": trainer.step_index, "kimg": trainer.nimg / 1000}
            trainer._log({**event, "resumed": {"snapshot": latest["snapshot"], "changed": changed}})
        return trainer

    def train(
        self,
        progress: bool = True,
        seconds: float | None = None,
        snapshot_seconds: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> Path | None:
        """Run until cfg.kimg, `seconds` of wall time, or `stop()` says so (a signal: see stop.py).

        Ticks every tick_kimg; snapshots at the first tick, every snapshot_ticks ticks, every
        `snapshot_seconds` since the last one, and at the end. Returns the last snapshot written.
        """
        from tqdm import tqdm  # noqa: PLC0415

        deadline = None if seconds is None else time.monotonic() + seconds
        total = int(self.cfg.kimg * 1000)
        tick_nimg = self.cfg.tick_kimg * 1000
        show = progress and self.process.is_main
        # A time budget shows as a bar over seconds; a length in kimg as a bar over clips.
        if deadline is None:
            bar = tqdm(total=total, initial=self.nimg, unit="clip", unit_scale=True, disable=not show)
        else:
            bar = tqdm(total=int(seconds), unit="s", disable=not show)
        started = time.monotonic()
        last = None
        self.stopped = False
        while self.nimg < total:
            self.step()
            bar.update(
                self.cfg.batch if deadline is None else int(min(time.monotonic() - started, seconds)) - bar.n
            )
            self.stopped, due = self._decide(deadline, snapshot_seconds, stop)
            done = self.nimg >= total or self.stopped
            # On the tick_kimg grid, also after a resume from a snapshot that stopped between ticks.
            if self.nimg // tick_nimg > (self.nimg - self.cfg.batch) // tick_nimg or done:
                record = self.tick()
                bar.set_postfix(kimg=f"{record['kimg']:.1f}", sec_per_kimg=f"{record['sec_per_kimg']:.1f}")
                due = due or self.tick_index == 1 or self.tick_index % self.cfg.snapshot_ticks == 0
            if due or done:
                last = self.snapshot() or last
            if self.stopped:
                break
        bar.close()
        return last

    def _decide(
        self, deadline: float | None, snapshot_seconds: float | None, stop: Callable[[], bool] | None
    ) -> tuple[bool, bool]:
        """After a step: (stop now, snapshot now), the same in every process.

        One process asks its own clock and flag, nothing on the device. Several must stop and save
        at the same step: any process's signal, and rank 0's clock, are summed over processes every
        DECIDE_STEPS steps (a host read of a device value, so not every step).
        """
        now = time.monotonic()
        asked = stop is not None and stop()
        late = deadline is not None and now > deadline
        due = snapshot_seconds is not None and now - self._snapshot_time > snapshot_seconds
        if self.process.world == 1:
            return asked or late, due
        if self.step_index % DECIDE_STEPS:
            return False, False
        main = float(self.process.is_main)
        flags = torch.tensor([float(asked), main * late, main * due], device=self.process.device)
        asked, late, due = (self.process.sum_(flags) > 0).tolist()
        return asked or late, due


def _spread_frames(dataset, clips: int = 64) -> torch.Tensor:
    """The first frame of up to `clips` clips spread over the dataset [M, 3, R, R]: the teacher's spread."""
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(clips, len(dataset))).round().astype(int))
    if len(picks) < 2:
        raise ValueError(f"the teacher's spread needs at least 2 clips; the dataset has {len(dataset)}")
    return torch.stack([dataset[int(i)]["frames"][0] for i in picks]).cpu()


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource  # noqa: PLC0415

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
