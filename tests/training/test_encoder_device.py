"""The encoder's training and inversion with every tensor on an accelerator, without one
(what this proves and what it does not: tests/device_standin.py)."""

import pytest
import torch
from device_standin import OffHostMode
from tiny import tiny_config, tiny_encoder_config

from stylevid.api import VideoGenerator
from stylevid.encoder import VideoEncoder
from stylevid.encoder.inversion import encode, styles_to_codes
from stylevid.networks import Generator
from stylevid.training.encoder_config import EncoderTrainConfig
from stylevid.training.encoder_trainer import EncoderTrainer


@pytest.mark.filterwarnings("ignore:.*non-meta parameter in the checkpoint:UserWarning")
def test_encoder_steps_snapshot_resume_and_inversion_stay_on_the_device(tmp_path, monkeypatch, clips):
    monkeypatch.setenv("STYLEVID_OPS", "ref")
    config = tiny_config()
    torch.manual_seed(0)
    gen = VideoGenerator(Generator(config.generator), config)
    gen.sha256  # noqa: B018 -- the weights' hash needs their bytes: taken before they leave the host
    cfg = EncoderTrainConfig(
        encoder=tiny_encoder_config(gen.generator),
        steps=2,
        tick_steps=1,
        identities=2,
        references=3,
        teacher="none",
    )
    with OffHostMode() as mode:
        trainer = EncoderTrainer(cfg, gen, tmp_path, clips, device="meta")
        trainer.step()
        trainer.tick()
        trainer.snapshot()
        resumed = EncoderTrainer.resume(tmp_path, gen, clips, device="meta", steps=3)
        resumed.step()
        frames = torch.zeros(1, 4, 3, 16, 16, device="meta")
        module = VideoEncoder(resumed.encoder).encoder
        styles, weights = encode(module, gen.generator, frames)
        codes, _ = styles_to_codes(gen.generator, styles, torch.arange(4.0, device="meta")[None], 4)
        video = gen.generator(codes, torch.arange(4.0, device="meta"))
    assert mode.host_reads > 0 and resumed.step_index == 2
    assert video.device.type == "meta" and weights.device.type == "meta"
    elsewhere = [k for k, t in resumed.encoder.state_dict().items() if t.device.type != "meta"]
    assert not elsewhere
    for group in resumed.opt.state.values():
        assert all(t.device.type == "meta" for k, t in group.items() if k != "step")
