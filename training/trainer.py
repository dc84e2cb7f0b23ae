"""The training loop: a Trainer with short methods (step, tick, snapshot, resume) over phases as data."""

from __future__ import annotations

import copy
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stylevid import checkpoint
from stylevid.atomic import write_atomically
from stylevid.codes import Codes
from stylevid.config import FACTORS
from stylevid.networks import Generator, TemporalDiscriminator
from stylevid.training import losses
from stylevid.training.augment import AdaptiveProbability, augment_clips
from stylevid.training.config import TrainConfig
from stylevid.training.distributed import ProcessGroup
from stylevid.training.heads import FactorHead

LATEST = "latest.json"


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or infinite: the run stops and keeps its last good snapshot."""


@dataclass
class Phase:
    """One optimisation phase: which loss, which parameters, how often (lazy regularisation)."""

    name: str
    run: Callable[[torch.Generator], torch.Tensor]
    modules: list[nn.Module]
    optimizer: torch.optim.Optimizer
    interval: int = 1


def clip_times(n: int, k: int, max_gap: int, generator: torch.Generator, max_start: int = 0) -> torch.Tensor:
    """K strictly increasing frame times per clip [n, k], spanning at most max_gap, from a random start."""
    offsets = torch.stack([torch.randperm(max_gap, generator=generator)[: k - 1] + 1 for _ in range(n)])
    offsets = torch.cat([torch.zeros(n, 1, dtype=torch.long), offsets.sort(dim=1).values], dim=1)
    start = torch.randint(0, max_start + 1, (n, 1), generator=generator)
    return (start + offsets).float()


def _adam(params, lr: float, betas, interval: int | None) -> torch.optim.Adam:
    # Lazy regularisation runs every `interval` steps; scaling lr and betas keeps the effective
    # optimiser the same as if the regulariser ran every step (StyleGAN2, appendix B).
    ratio = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=tuple(b**ratio for b in betas), eps=1e-8)


class Trainer:
    """Trains G (with its factor head) and the temporal D on a clip dataset; only rank 0 writes."""

    def __init__(
        self,
        config: TrainConfig,
        dataset,
        run_dir: str | Path,
        process: ProcessGroup | None = None,
        workers: int = 0,
    ):
        self.cfg, self.run_dir = config, Path(run_dir)
        self.process = process or ProcessGroup()
        if config.batch % self.process.world:
            raise ValueError(f"batch={config.batch} must divide evenly over {self.process.world} processes")
        self.dataset, self.workers = dataset, workers
        device = self.process.device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # every process starts from the same weights
            self.G = Generator(config.model.generator).to(device)
            self.D = TemporalDiscriminator(config.model.discriminator).to(device)
            model = config.model
            self.Q = FactorHead(
                model.generator.resolution, model.generator.w_dim, model.discriminator.channels
            ).to(device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        k = config.model.discriminator.frames
        self.frames_per_clip = k
        self.opt_G = _adam([*self.G.parameters(), *self.Q.parameters()], config.lr_g, config.betas, None)
        self.opt_D = _adam(self.D.parameters(), config.lr_d, config.betas, config.r1_interval)
        self.phases = [
            Phase("G", self._generator_loss, [self.G, self.Q], self.opt_G),
            Phase("D", self._discriminator_loss, [self.D], self.opt_D),
        ]
        if config.loss.r1_gamma > 0:
            self.phases.append(Phase("D_r1", self._r1_loss, [self.D], self.opt_D, config.r1_interval))
        aug = config.augment
        self.ada = (
            AdaptiveProbability(aug.target, aug.speed_kimg, config.batch, aug.interval)
            if aug.enabled
            else None
        )
        self.step_index = 0
        self.tick_index = 0
        self.stats: dict[str, list[float]] = defaultdict(list)
        self._batches: Iterator | None = None
        self._real: tuple | None = None
        self._tick_started = (time.monotonic(), 0)

    # ---- progress -------------------------------------------------------------------------

    @property
    def nimg(self) -> int:
        """Real clips shown to D so far (over all processes)."""
        return self.step_index * self.cfg.batch

    def _generator_for(self, step: int, stream: int) -> torch.Generator:
        # All randomness of a step derives from (seed, step): resuming needs no RNG state, and
        # every process draws the same global batch and keeps its rows.
        return torch.Generator().manual_seed((self.cfg.seed * 1_000_003 + step) * 8 + stream)

    # ---- data -----------------------------------------------------------------------------

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's real clips [b, K, 3, R, R] and times [b, K] (the same for D and its R1)."""
        if self._real is None or self._real[0] != self.step_index:
            if self._batches is None:
                self._batches = self._iterate_real(self.step_index)
            frames, times = next(self._batches)
            self._real = (self.step_index, frames.to(self.process.device), times.to(self.process.device))
        return self._real[1], self._real[2]

    def _iterate_real(self, start_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        loader = torch.utils.data.DataLoader(
            _EpochItems(self.dataset),
            batch_sampler=_StepBatches(
                len(self.dataset),
                self.cfg.batch,
                self.process.rows(self.cfg.batch),
                self.cfg.seed,
                start_step,
            ),
            num_workers=self.workers,
        )
        for batch in loader:
            yield batch["frames"], batch["times"]

    # ---- losses (each returns this process's share of the global mean) -------------------

    def _sample_fake(self, generator: torch.Generator) -> tuple[Codes, torch.Tensor]:
        """Codes of the whole global batch and this process's clip times [b, K]."""
        cfg, rows = self.cfg, self.process.rows(self.cfg.batch)
        times = clip_times(cfg.batch, self.frames_per_clip, cfg.max_gap, generator, max_start=cfg.max_gap)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        codes = self.G.sample(cfg.batch, seed=seed, frames=int(times.max()) + 1)
        t = times[rows].to(self.process.device)
        return codes, t

    def _augment(self, clips: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.ada is None:
            return clips
        return augment_clips(clips, self.ada.p, generator, self.process.rows(self.cfg.batch))

    def _generator_loss(self, generator: torch.Generator) -> torch.Tensor:
        cfg, rows, w = self.cfg, self.process.rows(self.cfg.batch), self.cfg.loss
        codes_all, t = self._sample_fake(generator)
        codes = codes_all[rows]
        frames, parts = self.G(codes, t, layers=True)
        per_clip = losses.gan_generator(self.D(self._augment(frames, generator), t))
        self._record("loss/G_adversarial", per_clip)
        self._track_means(codes, parts)
        if w.recovery or w.identity or w.swap:
            predicted = self.Q(frames)
            targets = {
                "identity": codes.identity,
                "background": codes.background,
                "pose": parts["pose"],
                "lighting": parts["lighting"],
            }
            if w.recovery:
                recovery = sum(losses.factor_recovery(predicted, targets).values())
                self._record("loss/recovery", recovery)
                per_clip = per_clip + w.recovery * recovery
            if w.identity:
                emb = predicted["embedding"]
                candidates = self.process.gather(nn.functional.normalize(emb[:, 1:].mean(dim=1), dim=-1))
                identity = losses.identity_contrastive(emb[:, 0], candidates, rows.start)
                self._record("loss/identity", identity)
                per_clip = per_clip + w.identity * identity
            if w.swap:
                factor = FACTORS[self.step_index % len(FACTORS)]
                order = torch.roll(torch.arange(cfg.batch), 1).tolist()
                swapped = codes_all.replace(**{factor: getattr(codes_all, factor)[order]})[rows]
                swap = losses.swap_consistency(predicted, self.Q(self.G(swapped, t)), factor)
                self._record("loss/swap", swap)
                per_clip = per_clip + w.swap * swap
        return per_clip.sum() / cfg.batch

    def _discriminator_loss(self, generator: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        with torch.no_grad():
            codes_all, t_fake = self._sample_fake(generator)
            fake = self.G(codes_all[self.process.rows(cfg.batch)], t_fake)
        fake_loss = losses.gan_discriminator(self.D(self._augment(fake, generator), t_fake), real=False)
        real, t_real = self._real_batch()
        scores = self.D(self._augment(real, generator), t_real)
        real_loss = losses.gan_discriminator(scores, real=True)
        if self.ada is not None:
            signs = self.process.sum_(
                torch.stack([torch.sign(scores["video"].detach()).sum(), torch.tensor(float(real.shape[0]))])
            )
            self.ada.observe(float(signs[0]), int(signs[1]))
        self._record("loss/D_fake", fake_loss)
        self._record("loss/D_real", real_loss)
        self._record("scores/real", scores["video"].detach())
        return (fake_loss + real_loss).sum() / cfg.batch

    def _r1_loss(self, generator: torch.Generator) -> torch.Tensor:
        real, t_real = self._real_batch()
        real = real.detach().requires_grad_(True)
        penalty = losses.r1_penalty(self.D(self._augment(real, generator), t_real), real)
        self._record("loss/r1", penalty)
        return penalty.sum() * (self.cfg.loss.r1_gamma / 2) * self.cfg.r1_interval / self.cfg.batch

    # ---- bookkeeping ----------------------------------------------------------------------

    def _record(self, name: str, per_clip: torch.Tensor) -> None:
        total = self.process.sum_(per_clip.detach().float().sum().reshape(1))
        self.stats[name].append(float(total) / self.cfg.batch)

    @torch.no_grad()
    def _track_means(self, codes: Codes, parts: dict) -> None:
        values = {
            "identity": codes.identity,
            "background": codes.background,
            "pose": parts["pose"],
            "lighting": parts["lighting"],
        }
        for factor, w in values.items():
            flat = w.detach().reshape(-1, w.shape[-1])
            total = self.process.sum_(
                torch.cat([flat.sum(0), torch.tensor([float(flat.shape[0])], device=flat.device)])
            )
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

    def gradients(self, index: int) -> float:
        """Run phase `index` of this step up to its gradients (summed over processes); returns the loss."""
        phase = self.phases[index]
        for module in phase.modules:
            module.requires_grad_(True)
        phase.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.process.device.type, dtype=torch.bfloat16, enabled=self._amp):
            loss = phase.run(self._generator_for(self.step_index, index))
        total = float(self.process.sum_(loss.detach().float().reshape(1)))
        if not math.isfinite(total):
            raise NonFiniteLoss(
                f"step {self.step_index}: the {phase.name} loss is {total}; training stopped with the "
                f"last good snapshot kept in {self.run_dir}. Lower the learning rate or raise the R1 "
                f"weight, then resume from that snapshot"
            )
        loss.backward()
        for module in phase.modules:
            self.process.sum_gradients(module.parameters())
            module.requires_grad_(False)
        return total

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
            if not math.isnan(rt):
                self.stats["augment/rt"].append(rt)
            self.stats["augment/p"].append(self.ada.p)
        self.step_index += 1

    def _out_of_time(self, deadline: float | None) -> bool:
        # Every process must stop at the same step, so rank 0's clock decides for all.
        if deadline is None:
            return False
        late = torch.tensor(
            [float(self.process.is_main and time.monotonic() > deadline)], device=self.process.device
        )
        return bool(self.process.sum_(late)[0] > 0)

    @property
    def _amp(self) -> bool:
        return self.cfg.mixed_precision and self.process.device.type == "cuda"

    def tick(self) -> dict:
        """Average the stats since the last tick, log them (rank 0) and start a new tick."""
        started, nimg0 = self._tick_started
        now = time.monotonic()
        self.tick_index += 1
        record = {
            "tick": self.tick_index,
            "step": self.step_index,
            "kimg": self.nimg / 1000,
            "sec_per_kimg": (now - started) / max((self.nimg - nimg0) / 1000, 1e-9),
            "memory_mib": _peak_memory_mib(self.process.device),
            "stats": {name: sum(v) / len(v) for name, v in sorted(self.stats.items()) if v},
        }
        self.stats.clear()
        self._tick_started = (now, self.nimg)
        if self.process.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            writer = self._tensorboard()
            for name, value in record["stats"].items():
                writer.add_scalar(name, value, self.nimg)
            writer.add_scalar("progress/sec_per_kimg", record["sec_per_kimg"], self.nimg)
            writer.add_scalar("progress/memory_mib", record["memory_mib"], self.nimg)
            writer.flush()
        return record

    def _tensorboard(self):
        if not hasattr(self, "_writer"):
            from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        return self._writer

    def snapshot(self) -> Path | None:
        """Write weights + training state atomically, then point latest.json at them (rank 0 only)."""
        if not self.process.is_main:
            return None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        name = f"snapshot-{self.nimg:09d}"
        config = {"model": self.cfg.model.to_dict(), "training": self.cfg.to_dict()}
        info = {"step": self.step_index, "kimg": self.nimg / 1000, "tick": self.tick_index}
        weights = checkpoint.save_checkpoint(
            self.run_dir / f"{name}.safetensors",
            {"G": self.G, "G_ema": self.G_ema, "D": self.D, "Q": self.Q},
            config,
            info,
        )
        optimizers = {"opt_G": self.opt_G, "opt_D": self.opt_D}
        tensors, meta = {}, {}
        for key, opt in optimizers.items():
            tensors[key], meta[key] = _optimizer_to_tensors(opt)
        state = {**info, "ada_p": None if self.ada is None else self.ada.p}
        checkpoint.save_checkpoint(
            self.run_dir / f"{name}-state.safetensors", tensors, {"optimizers": meta}, state
        )
        # Written last: a crash before this line leaves latest.json naming the previous snapshot.
        latest = {"snapshot": f"{name}.safetensors", "state": f"{name}-state.safetensors", **info}
        write_atomically(self.run_dir / LATEST, json.dumps(latest, indent=2).encode())
        self._write_samples(name)
        return weights

    def _write_samples(self, name: str) -> None:
        """The same 8 videos at every snapshot: an mp4 grid beside it, and frames in TensorBoard."""
        from stylevid.api import VideoGenerator  # noqa: PLC0415
        from stylevid.video import make_grid, save_video  # noqa: PLC0415

        gen = VideoGenerator(self.G_ema, self.cfg.model)
        video = gen.render(gen.sample(8, seed=0, frames=16), 16).cpu()
        save_video(video, self.run_dir / f"{name}-samples.mp4", fps=8, nrow=4)
        # Rows: videos; columns: every 4th frame, so motion shows in a still image.
        sheet = make_grid(video[:, ::4].flatten(0, 1), nrow=4)
        self._tensorboard().add_image("samples", (sheet + 1) / 2, self.nimg)

    @classmethod
    def resume(
        cls, run_dir: str | Path, dataset, process: ProcessGroup | None = None, workers: int = 0
    ) -> Trainer:
        """A Trainer continuing exactly where the run's latest snapshot stopped."""
        run_dir = Path(run_dir)
        try:
            latest = json.loads((run_dir / LATEST).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise FileNotFoundError(
                f"{run_dir} has no readable {LATEST}: is it a stylevid run folder? ({exc})"
            ) from exc
        weights = checkpoint.load_checkpoint(run_dir / latest["snapshot"])
        state = checkpoint.load_checkpoint(run_dir / latest["state"])
        trainer = cls(TrainConfig.from_dict(weights.config["training"]), dataset, run_dir, process, workers)
        device = trainer.process.device
        for name in ("G", "G_ema", "D", "Q"):
            checkpoint.load_module_state(getattr(trainer, name), weights.tensors[name], name)
            getattr(trainer, name).to(device)
        for key, opt in (("opt_G", trainer.opt_G), ("opt_D", trainer.opt_D)):
            _optimizer_from_tensors(opt, state.tensors.get(key, {}), state.config["optimizers"][key])
        trainer.step_index, trainer.tick_index = state.metadata["step"], state.metadata["tick"]
        if trainer.ada is not None:
            trainer.ada.p = state.metadata["ada_p"]
        trainer._tick_started = (time.monotonic(), trainer.nimg)
        return trainer

    def train(self, progress: bool = True, seconds: float | None = None) -> Path | None:
        """Run until cfg.kimg (or `seconds` of wall time); tick every tick_kimg, snapshot every
        snapshot_ticks ticks and at the end."""
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
        done = self.nimg >= total
        while not done:
            self.step()
            bar.update(
                self.cfg.batch if deadline is None else int(min(time.monotonic() - started, seconds)) - bar.n
            )
            done = self.nimg >= total or self._out_of_time(deadline)
            if self.nimg >= (self.tick_index + 1) * tick_nimg or done:
                record = self.tick()
                bar.set_postfix(kimg=f"{record['kimg']:.1f}", sec_per_kimg=f"{record['sec_per_kimg']:.1f}")
                if self.tick_index % self.cfg.snapshot_ticks == 0 or done:
                    last = self.snapshot() or last
        bar.close()
        return last


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource  # noqa: PLC0415

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Adam's state as flat tensors plus JSON: safetensors holds tensors only, and no pickle is used."""
    sd = opt.state_dict()
    tensors = {f"{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    scalars = {
        f"{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items() if not torch.is_tensor(v)
    }
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = defaultdict(dict)
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        index, name = key.split(".", 1)
        state[int(index)][name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    opt.load_state_dict({"state": dict(state), "param_groups": groups})


class _StepBatches:
    """Per step, this process's rows of the global batch, as (epoch, index) pairs; epochs reshuffle.

    The order depends only on (seed, step), so a resumed run and any number of processes see the
    same clips as one uninterrupted process.
    """

    def __init__(self, size: int, batch: int, rows: slice, seed: int, start_step: int):
        if size < 1:
            raise ValueError("the dataset holds no usable videos")
        self.size, self.batch, self.rows, self.seed, self.start_step = size, batch, rows, seed, start_step
        self._perm: tuple[int, torch.Tensor] | None = None

    def _order(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (
                epoch,
                torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch)),
            )
        return self._perm[1]

    def __iter__(self):
        step = self.start_step
        while True:
            first = step * self.batch
            items = []
            for position in range(first + self.rows.start, first + self.rows.stop):
                epoch, i = divmod(position, self.size)
                items.append((epoch, int(self._order(epoch)[i])))
            yield items
            step += 1


class _EpochItems(torch.utils.data.Dataset):
    """Indexes a clip dataset by (epoch, index), so its per-epoch randomness reaches every worker."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]
