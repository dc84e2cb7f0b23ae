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
from stylevid.training.config import AugmentConfig
from stylevid.training.distributed import ProcessGroup
from stylevid.training.trainer import NonFiniteLoss, Trainer

TERMS = (
    "G_adversarial",
    "keep",
    "move",
    "contrast",
    "D_real",
    "D_fake",
    "r1",
)


def _params(trainer):
    return {
        name: {k: v.clone() for k, v in getattr(trainer, name).state_dict().items()}
        for name in ("G", "G_ema", "D")
    }


def test_a_few_steps_move_every_network_with_finite_losses(clips, tmp_path):
    trainer = Trainer(tiny_training(), clips, tmp_path)
    before = _params(trainer)
    for _ in range(3):
        trainer.step()
    after = _params(trainer)
    for name in ("G", "G_ema", "D"):
        moved = [k for k in before[name] if not torch.equal(before[name][k], after[name][k])]
        assert moved, f"{name} did not change"
    for name in ("G", "D"):
        params = dict(getattr(trainer, name).named_parameters())
        frozen = [k for k, p in params.items() if torch.equal(before[name][k], p)]
        assert not frozen, f"{name} parameters never updated: {frozen}"
    for term in TERMS:
        values = trainer.stats[f"loss/{term}"]
        assert values and all(torch.isfinite(torch.tensor(values))), term


def test_resume_continues_bit_exactly(clips, tmp_path):
    # ADA adjusts every 4th step and the snapshot lands between two adjustments: the signs seen
    # since the last one must survive the resume.
    cfg = tiny_training(augment=AugmentConfig(enabled=True, interval=4, speed_kimg=0.05))
    straight = Trainer(cfg, clips, tmp_path / "straight")
    straight.ada.p = 0.3
    for _ in range(6):
        straight.step()
    first = Trainer(cfg, clips, tmp_path / "split")
    first.ada.p = 0.3
    for _ in range(2):
        first.step()
    first.snapshot()
    resumed = Trainer.resume(tmp_path / "split", clips)
    assert resumed.step_index == 2 and resumed.ada.state() == first.ada.state()
    for _ in range(4):
        resumed.step()
    a, b = _params(straight), _params(resumed)
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key} differs after resume"
    assert straight.ada.state() == resumed.ada.state()


class RacyClips(ClipsInMemory):
    """Keeps its epoch in shared memory like VideoClipDataset, and reads it late: a race made likely."""

    def __init__(self):
        super().__init__()
        self.shared = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self.shared.fill_(epoch)

    def __getitem__(self, index: int) -> dict:
        time.sleep(0.01)
        return self.item(index, int(self.shared))


def test_loader_workers_give_the_clips_of_one_process_across_epoch_boundaries(tmp_path):
    # 8 videos, 4 clips a step: an epoch ends every 2nd step, while the other worker prefetches.
    def real_batches(workers):
        trainer = Trainer(tiny_training(), RacyClips(), tmp_path / str(workers), workers=workers)
        batches = []
        for _ in range(8):
            batches.append(trainer._real_batch())
            trainer.step_index += 1
        return batches

    for (a, ta), (b, tb) in zip(real_batches(0), real_batches(2), strict=True):
        assert torch.equal(ta, tb) and torch.equal(a, b)


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
        trainer.ada.p = 0.5
        grads = _gradients_of(trainer)
        if rank == 0:
            torch.save(grads, Path(out_dir) / "grads.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_give_the_gradients_of_one_with_augmentation_on(clips, tmp_path):
    single = Trainer(tiny_training(), clips, tmp_path / "one")
    single.ada.p = 0.5  # every transform is drawn, about half of them applied
    one = _gradients_of(single)
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    two = torch.load(tmp_path / "grads.pt", weights_only=True)
    assert one.keys() == two.keys()
    for key in one:
        # Same global batch, split 2 x 2: only the order of float sums differs.
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=key)


KILLER = """
import os, sys
sys.path.insert(0, {tests!r})
from tiny import ClipsInMemory, tiny_training
from stylevid.training.trainer import Trainer

# Stop inside one write of the second snapshot, say so, and wait there to be killed.
target, moment, seen, fds = {target!r}, {moment!r}, [], {{}}
real_open, real_write, real_replace = os.open, os.write, os.replace

def ours(path):
    return os.path.basename(str(path)).startswith("." + target + ".")

def hold_here():  # is this write of the target the one to stop in? (latest.json: the 2nd one)
    seen.append(target)
    return len(seen) == (2 if target == "latest.json" else 1)

def wait():
    print("inside", moment, target, flush=True)
    sys.stdin.readline()

def opened(path, *args, **kwargs):
    fd = real_open(path, *args, **kwargs)
    fds[fd] = str(path)
    return fd

def wrote(fd, data):
    if moment == "writing" and ours(fds.get(fd, "")) and len(data) > 1 and hold_here():
        real_write(fd, bytes(data[: len(data) // 2]))
        wait()
    return real_write(fd, data)

def replaced(src, dst):
    if moment == "renaming" and ours(src) and hold_here():
        wait()
    return real_replace(src, dst)

os.open, os.write, os.replace = opened, wrote, replaced
trainer = Trainer(tiny_training(), ClipsInMemory(), {run!r})
for _ in range(2):
    trainer.step()
    trainer.snapshot()
print("not killed", flush=True)
"""


@pytest.mark.parametrize("moment", ["writing", "renaming"])
@pytest.mark.parametrize(
    "target", ["snapshot-000000008.safetensors", "snapshot-000000008-state.safetensors", "latest.json"]
)
def test_a_kill_inside_any_write_of_a_snapshot_leaves_the_previous_one_resumable(tmp_path, target, moment):
    run = tmp_path / "run"
    code = KILLER.format(tests=str(Path(__file__).parents[1]), run=str(run), target=target, moment=moment)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().split() == ["inside", moment, target]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    latest = json.loads((run / "latest.json").read_text())
    assert latest["snapshot"] == "snapshot-000000004.safetensors"
    for key in ("snapshot", "state"):
        checkpoint.load_checkpoint(run / latest[key])
    resumed = Trainer.resume(run, ClipsInMemory())
    assert resumed.step_index == latest["step"] == 1


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
    for term in TERMS:
        assert f"loss/{term}" in names
    assert "augment/p" in names and records[-1]["sec_per_kimg"] > 0
    assert list((tmp_path / "tensorboard").iterdir())
    assert last.exists() and (tmp_path / f"{last.stem}-samples.mp4").exists()
    import stylevid

    assert stylevid.load(last).render(stylevid.load(last).sample(1, frames=4), 4).shape == (1, 4, 3, 16, 16)


def _records(run):
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def test_a_nan_run_resumes_past_the_failing_step_with_a_lower_learning_rate(clips, tmp_path):
    hot = Trainer(tiny_training(lr_g=100.0, lr_d=100.0), clips, tmp_path)
    hot.snapshot()
    for _ in range(6):
        hot.step()  # the steps never wait to read a loss: the tick reports
    with pytest.raises(NonFiniteLoss, match=r"step \d: the \w+ loss is (nan|inf).* --lr-g 50 --lr-d 50"):
        hot.tick()
    failed_at = hot.step_index
    cool = Trainer.resume(tmp_path, clips, lr_g=0.002, lr_d=0.002)
    ratio = cool.cfg.r1_interval / (cool.cfg.r1_interval + 1)  # lazy R1's scaling of D's optimiser
    assert cool.opt_G.param_groups[0]["lr"] == 0.002
    assert cool.opt_D.param_groups[0]["lr"] == pytest.approx(0.002 * ratio)
    for _ in range(failed_at + 3):
        cool.step()
    assert cool.step_index > failed_at
    resumed = [r["resumed"] for r in _records(tmp_path) if "resumed" in r]
    assert resumed == [
        {
            "snapshot": "snapshot-000000000.safetensors",
            "changed": {"lr_g": [100.0, 0.002], "lr_d": [100.0, 0.002]},
        }
    ]


def test_resume_with_a_larger_batch_continues_the_clip_count(clips, tmp_path):
    first = Trainer(tiny_training(), clips, tmp_path)
    first.step()
    first.snapshot()
    bigger = Trainer.resume(tmp_path, clips, batch=8, kimg=0.1)
    assert (bigger.nimg, bigger.cfg.batch, bigger.cfg.kimg) == (4, 8, 0.1)
    bigger.step()
    assert bigger.nimg == 12 and bigger._real[1].shape[0] == 8


def test_a_crash_after_the_snapshot_logs_no_tick_twice(clips, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    crashed = Trainer(tiny_training(), clips, tmp_path)
    for tick in range(3):
        crashed.step()
        crashed.step()
        crashed.tick()
        if tick == 1:
            crashed.snapshot()
    crashed._tensorboard().close()  # the third tick was logged, then the process died
    resumed = Trainer.resume(tmp_path, clips)
    for _ in range(2):
        resumed.step()
        resumed.step()
        resumed.tick()
    resumed._tensorboard().close()
    ticks = [r["tick"] for r in _records(tmp_path) if "stats" in r]
    assert ticks == [1, 2, 3, 4]
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("loss/D_real")]
    assert steps == [8, 16, 24, 32]


def test_weights_that_are_not_finite_are_never_pointed_to(clips, tmp_path):
    trainer = Trainer(tiny_training(), clips, tmp_path)
    trainer.step()
    good = trainer.snapshot()
    trainer.step()
    with torch.no_grad():
        next(trainer.D.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(NonFiniteLoss, match="not saved.*--resume"):
        trainer.snapshot()
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["snapshot"] == good.name and not list(tmp_path.glob("snapshot-000000008*"))


def test_a_sample_video_that_cannot_be_written_does_not_stop_the_run(clips, tmp_path, monkeypatch):
    import stylevid.video

    def broken(*args, **kwargs):
        raise RuntimeError("no encoder for this codec")

    monkeypatch.setattr(stylevid.video, "save_video", broken)
    trainer = Trainer(tiny_training(), clips, tmp_path)
    trainer.step()
    with pytest.warns(UserWarning, match="could not write the sample video.*no encoder"):
        saved = trainer.snapshot()
    assert json.loads((tmp_path / "latest.json").read_text())["snapshot"] == saved.name


def test_mixed_precision_keeps_the_mappings_and_means_in_float32(clips, tmp_path, monkeypatch):
    # bfloat16 autocast is CUDA's default; the CPU has the same autocast, so the path is tested here.
    monkeypatch.setattr(Trainer, "_amp", property(lambda self: True))
    trainer = Trainer(tiny_training(), clips, tmp_path)
    codes, z = trainer.G.sample(2, frames=8), torch.randn(2, trainer.cfg.model.generator.z_dim)
    t = torch.arange(8.0)[None].expand(2, -1)
    reference = trainer.G.identity(z), trainer.G.trajectory_styles("pose", codes.pose, t)
    conv_dtypes = []
    conv = trainer.G.foreground_synthesis.blocks[-1].conv1
    hook = conv.register_forward_hook(lambda module, inputs, output: conv_dtypes.append(output.dtype))
    with trainer._precision():
        mixed = trainer.G.identity(z), trainer.G.trajectory_styles("pose", codes.pose, t)
        video = trainer.G(codes, 2)
    hook.remove()
    assert conv_dtypes == [torch.bfloat16]  # the synthesis convolutions do run in bfloat16 ...
    assert video.dtype == torch.float32  # ... while the image skip sums in float32
    for a, b in zip(reference, mixed, strict=True):
        assert b.dtype == torch.float32 and torch.equal(a, b)
    for _ in range(3):
        trainer.step()
    assert trainer.G.identity.w_avg.dtype == torch.float32 and torch.isfinite(trainer.G.identity.w_avg).all()
    assert all(torch.isfinite(torch.stack(v)).all() for v in trainer.stats.values())
