"""The trainer on the CPU: every network moves, resume is exact, 2 processes equal 1, crashes lose nothing."""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny import ClipsInMemory, tiny_training

from stylevid import checkpoint
from stylevid.training import losses
from stylevid.training.distributed import ProcessGroup
from stylevid.training.trainer import NonFiniteLoss, Trainer, clip_times


def _params(trainer):
    return {
        name: {k: v.clone() for k, v in getattr(trainer, name).state_dict().items()}
        for name in ("G", "G_ema", "D", "Q")
    }


def test_a_few_steps_move_every_network_with_finite_losses(clips, tmp_path):
    trainer = Trainer(tiny_training(), clips, tmp_path)
    before = _params(trainer)
    for _ in range(3):
        trainer.step()
    after = _params(trainer)
    for name in ("G", "G_ema", "D", "Q"):
        moved = [k for k in before[name] if not torch.equal(before[name][k], after[name][k])]
        assert moved, f"{name} did not change"
    for name in ("G", "D", "Q"):
        params = dict(getattr(trainer, name).named_parameters())
        frozen = [k for k, p in params.items() if torch.equal(before[name][k], p)]
        assert not frozen, f"{name} parameters never updated: {frozen}"
    for term in ("G_adversarial", "recovery", "identity", "swap", "D_real", "D_fake", "r1"):
        values = trainer.stats[f"loss/{term}"]
        assert values and all(torch.isfinite(torch.tensor(values))), term


def test_clip_times_are_sorted_distinct_and_within_the_gap():
    gen = torch.Generator().manual_seed(0)
    t = clip_times(200, 4, 7, gen, max_start=5)
    gaps = t[:, 1:] - t[:, :-1]
    assert (gaps >= 1).all() and (t[:, -1] - t[:, 0] <= 7).all() and (t[:, 0] <= 5).all()


def test_resume_continues_bit_exactly(clips, tmp_path):
    cfg = tiny_training()
    straight = Trainer(cfg, clips, tmp_path / "straight")
    for _ in range(4):
        straight.step()
    first = Trainer(cfg, clips, tmp_path / "split")
    for _ in range(2):
        first.step()
    first.snapshot()
    resumed = Trainer.resume(tmp_path / "split", clips)
    assert resumed.step_index == 2
    for _ in range(2):
        resumed.step()
    a, b = _params(straight), _params(resumed)
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key} differs after resume"
    assert straight.ada.p == resumed.ada.p


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gradients_of(trainer):
    out = {}
    for index, phase in enumerate(trainer.phases):
        trainer.gradients(index)
        for module in phase.modules:
            for name, p in module.named_parameters():
                grad = torch.zeros_like(p) if p.grad is None else p.grad
                out[f"{phase.name}.{type(module).__name__}.{name}"] = grad.clone()
    return out


def _worker(rank, port, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        trainer = Trainer(tiny_training(), ClipsInMemory(), out_dir, ProcessGroup(rank, 2))
        grads = _gradients_of(trainer)
        if rank == 0:
            torch.save(grads, Path(out_dir) / "grads.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_give_the_gradients_of_one(clips, tmp_path):
    one = _gradients_of(Trainer(tiny_training(), clips, tmp_path / "one"))
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    two = torch.load(tmp_path / "grads.pt", weights_only=True)
    assert one.keys() == two.keys()
    for key in one:
        # Same global batch, split 2 x 2: only the order of float sums differs.
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=key)


KILLER = """
import sys, torch
sys.path.insert(0, {tests!r})
from tiny import ClipsInMemory, tiny_training
from stylevid.training.trainer import Trainer
trainer = Trainer(tiny_training(), ClipsInMemory(), {run!r})
trainer.step()
trainer.snapshot()
print("first", flush=True)
while True:
    trainer.step()
    trainer.snapshot()
"""


def test_a_kill_during_snapshots_leaves_a_resumable_run(tmp_path):
    run = tmp_path / "run"
    code = KILLER.format(tests=str(Path(__file__).parents[1]), run=str(run))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "first"
        time.sleep(2.5)  # somewhere inside a later snapshot's writes
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    latest = json.loads((run / "latest.json").read_text())
    for key in ("snapshot", "state"):
        checkpoint.load_checkpoint(run / latest[key])
    resumed = Trainer.resume(run, ClipsInMemory())
    assert resumed.step_index == latest["step"] >= 1


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_snapshot(clips, tmp_path, monkeypatch):
    trainer = Trainer(tiny_training(), clips, tmp_path)
    trainer.step()
    good = trainer.snapshot()
    monkeypatch.setattr(losses, "gan_discriminator", lambda scores, real: scores["video"] * float("nan"))
    with pytest.raises(NonFiniteLoss, match="the D loss is nan.*last good snapshot"):
        trainer.train(progress=False)
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["snapshot"] == good.name
    checkpoint.load_checkpoint(good)


def test_training_logs_every_term_and_writes_snapshots(clips, tmp_path):
    trainer = Trainer(tiny_training(), clips, tmp_path)
    last = trainer.train(progress=False)
    records = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert len(records) == 2 and records[-1]["kimg"] == pytest.approx(0.016)
    names = set(records[-1]["stats"]) | set(records[0]["stats"])
    for term in ("G_adversarial", "recovery", "identity", "swap", "D_real", "D_fake", "r1"):
        assert f"loss/{term}" in names
    assert "augment/p" in names and records[-1]["sec_per_kimg"] > 0
    assert list((tmp_path / "tensorboard").iterdir())
    assert last.exists() and (tmp_path / f"{last.stem}-samples.mp4").exists()
    import stylevid

    assert stylevid.load(last).render(stylevid.load(last).sample(1, frames=4), 4).shape == (1, 4, 3, 16, 16)
