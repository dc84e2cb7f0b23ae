"""The trainer with every tensor on an accelerator, without one (what it proves: tests/device_standin.py)."""

import pytest
import torch
from device_standin import DeviceMixError, OffHostMode, move_by_replacing
from tiny import ClipsInMemory, tiny_training
from torch._subclasses.fake_tensor import FakeTensorMode

from stylevid.training import trainer as trainer_module
from stylevid.training.config import AugmentConfig, Disentangle
from stylevid.training.distributed import ProcessGroup
from stylevid.training.teachers import load_teacher, teacher_spread
from stylevid.training.trainer import Trainer


def _config():
    # ADA adjusting every 2nd step and R1 every 2nd: 4 steps run every phase and the controller.
    # The pair terms at full weight from the first step, so that step 0 runs them too.
    pairs = Disentangle(start_kimg=0.0, ramp_kimg=0.0)
    return tiny_training(augment=AugmentConfig(enabled=True, interval=2), r1_interval=2, disentangle=pairs)


def _tensors(trainer):
    for name, module in {**trainer._networks(), "teacher": trainer.teacher}.items():
        yield from ((f"{name}.{k}", t) for k, t in module.state_dict().items())
    for key, opt in (("opt_G", trainer.opt_G), ("opt_D", trainer.opt_D)):
        for i, state in enumerate(opt.state.values()):
            yield from ((f"{key}.{i}.{k}", t) for k, t in state.items() if k != "step")


def test_the_mode_refuses_a_cpu_scalar_in_device_math():
    with OffHostMode(), pytest.raises(DeviceMixError, match="combines tensors on"):
        torch.stack([torch.ones((), device="meta"), torch.tensor(1.0)])


@pytest.mark.filterwarnings("ignore:.*non-meta parameter in the checkpoint:UserWarning")
def test_steps_snapshot_and_resume_keep_every_tensor_on_the_device(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEVID_OPS", "ref")
    clips, device = ClipsInMemory(), ProcessGroup(device=torch.device("meta"))
    with OffHostMode() as mode:
        trainer = Trainer(_config(), clips, tmp_path, device)
        trainer.ada.p = 0.5  # so that every augmentation is drawn and applied
        for _ in range(4):
            trainer.step()
        trainer.tick()
        trainer.snapshot()
        resumed = Trainer.resume(tmp_path, clips, device)
        resumed.step()
    assert mode.host_reads > 0 and resumed.step_index == 5
    names = [name for name, _ in _tensors(resumed)]
    assert any(name.startswith("opt_D") for name in names) and any(".w_avg" in name for name in names)
    elsewhere = [name for name, t in _tensors(resumed) if t.device.type != "meta"]
    assert not elsewhere


def test_a_training_step_never_waits_for_the_device(tmp_path, monkeypatch):
    """On a GPU every host read of a device value stalls the step until the device catches up.

    Steps (every phase, the pair terms, ADA's adjustment, EMA) read nothing on the host; the tick
    reads the averaged stats and the non-finite flags at once, and a snapshot reads the weights.
    """
    monkeypatch.setenv("STYLEVID_OPS", "ref")
    clips, device = ClipsInMemory(), ProcessGroup(device=torch.device("meta"))
    with OffHostMode() as mode:
        trainer = Trainer(_config(), clips, tmp_path, device)
        trainer.ada.p = 0.5
        reads, uploads = [mode.host_reads], [mode.blocking_uploads]
        for _ in range(4):
            trainer.step()
            reads.append(mode.host_reads)
            uploads.append(mode.blocking_uploads)
        trainer.tick()
        reads.append(mode.host_reads)
    steps = [after - before for before, after in zip(reads[:-2], reads[1:-1], strict=True)]
    assert steps == [0, 0, 0, 0], f"host reads per step: {steps}"
    steps = [after - before for before, after in zip(uploads[:-1], uploads[1:], strict=True)]
    assert steps == [0, 0, 0, 0], f"blocking copies to the device per step: {steps}"
    assert reads[-1] > reads[-2]  # the tick does read (the test can see a read)


@pytest.mark.filterwarnings("ignore:Accessing the data pointer of FakeTensor:UserWarning")
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true but no accelerator:UserWarning")
def test_every_loss_runs_on_fake_cuda_tensors(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEVID_OPS", "ref")
    # The teacher's file is read and its spread measured on the CPU, before fake tensors exist (a
    # checkpoint's hash needs real bytes); the trainer then moves it to the device like the others.
    teacher = load_teacher("synthetic")
    spread = teacher_spread(teacher, torch.rand(8, 3, 16, 16) * 2 - 1)
    monkeypatch.setattr(trainer_module, "load_teacher", lambda kind, device: teacher)
    monkeypatch.setattr(trainer_module, "teacher_spread", lambda teacher, frames: spread)
    monkeypatch.setattr(torch.nn.Module, "to", move_by_replacing)
    with FakeTensorMode(allow_non_fake_inputs=True), OffHostMode():
        trainer = Trainer(_config(), ClipsInMemory(), tmp_path, ProcessGroup(device=torch.device("cuda")))
        trainer.ada.p = 0.5
        ran = []
        for index, phase in enumerate(trainer.phases):
            if phase.name == "D_r1":
                continue  # its double backward needs a CUDA context; the meta test runs it
            loss = phase.run(trainer._generator_for(0, index), trainer._rng_for(0, index))
            assert loss.device.type == "cuda", phase.name
            ran.append(phase.name)
        assert next(trainer.teacher.parameters()).device.type == "cuda"
        assert trainer.opt_G.defaults["fused"] and trainer.opt_D.defaults["fused"]  # one launch per step
        trainer._update_ema()
        assert trainer.G_ema.identity.w_avg.device.type == "cuda"
    assert ran == ["G", "D"]
