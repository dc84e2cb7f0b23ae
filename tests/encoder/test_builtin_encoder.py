"""The built-in encoder of builtin:synth64: photos to codes on any machine, and its scores."""

import json

import pytest
import torch
from skimage import data

import stylevid
from stylevid import builtin
from stylevid.cli import main
from stylevid.metrics.inversion import stability_ratio


@pytest.fixture(scope="module")
def gen():
    return stylevid.load("builtin:synth64")


@pytest.fixture(scope="module")
def enc():
    return stylevid.load_encoder("builtin:synth64")


def _photo(tmp_path):
    from PIL import Image

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_the_builtin_encoder_belongs_to_the_builtin_model_and_records_its_scores(gen, enc):
    enc.check_generator(gen)
    info = json.loads(builtin.resolve_encoder("builtin:synth64").with_suffix(".json").read_text())
    assert 0 <= info["samples"]["identity_nmse"] < 1  # better than the mean identity
    assert info["held_out_videos"]["face_network"].startswith("facenet")


def test_a_photo_becomes_codes_through_the_generators_shortcut(tmp_path, gen):
    codes = gen.invert(images=[_photo(tmp_path)])
    assert len(codes) == 1 and codes.identity.shape == (1, gen.generator.config.w_dim)
    assert torch.isfinite(gen.render(codes, 2)).all()


def test_invert_render_invert_is_stable(gen, enc):
    codes = gen.sample(24, seed=11, frames=8)
    frames = gen.render(codes, 1)[:, 0]
    first = torch.cat([enc.invert(gen, images=[f], align="none").identity for f in frames])
    again_frames = gen.render(codes.replace(identity=first), 1)[
        :, 0
    ]  # the same scenes, drawn with the inverted identities
    again = torch.cat([enc.invert(gen, images=[f], align="none").identity for f in again_frames])
    # The second inversion stays near the first: the drift is a fraction of the distance between people.
    pairs = torch.stack([first, again], dim=1)  # [P, 2, W]
    assert stability_ratio(pairs) < 0.5


def test_animate_runs_from_one_photo_with_the_defaults(tmp_path):
    out = tmp_path / "anim.mp4"
    photo = _photo(tmp_path)
    assert (
        main(["animate", "--refs", str(photo), "--motion-seed", "3", "--frames", "6", "--out", str(out)]) == 0
    )
    assert stylevid.read_video(out).shape[0] == 6


def test_invert_writes_codes_that_load_and_edit(tmp_path):
    photo, out = _photo(tmp_path), tmp_path / "codes.safetensors"
    assert main(["invert", "--images", str(photo), str(photo), "--out", str(out)]) == 0
    codes = stylevid.load_codes(out)
    assert len(codes) == 2 and torch.equal(codes.identity[0], codes.identity[1])
    assert len(codes.swap("background", 0, 1)) == 2


def test_a_faceless_reference_fails_naming_it_and_writes_nothing(tmp_path, capsys):
    from PIL import Image

    wall, out = tmp_path / "wall.png", tmp_path / "codes.safetensors"
    Image.new("RGB", (200, 200), (90, 90, 90)).save(wall)
    assert stylevid.cli.console(["invert", "--images", str(wall), "--out", str(out)]) == 1
    assert "wall.png" in capsys.readouterr().err and not out.exists()
    assert list(tmp_path.iterdir()) == [wall]


def test_the_inversion_metric_runs_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [
        "metrics",
        "--network",
        "builtin:synth64",
        "--encoder",
        "builtin:synth64",
        "--metrics",
        "inversion",
    ]
    assert main([*argv, "--people", "12"]) == 0
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["metric"] == "inversion" and 0 <= record["value"]
    assert set(record["results"]["stability"]) == {"R_1", "R_3", "R_5"}


def test_tg_id_falls_for_a_video_whose_identity_drifts(gen):
    from stylevid.metrics.face_embedders import load_face_embedder
    from stylevid.metrics.inversion import temporal_identity

    embedder = load_face_embedder(weights="facenet-casia-webface")
    codes = gen.sample(8, seed=5, frames=16)
    g = gen.generator
    t = torch.arange(16.0)[None]
    pose = g.trajectory_styles("pose", codes.pose[:1], t)
    light = g.trajectory_styles("lighting", codes.lighting[:1], t)
    with torch.no_grad():
        # The other person: of 7, the one FaceNet finds farthest from the first in the first frame (two
        # featureless synthetic heads can look alike to it).
        firsts = torch.cat(
            [
                g.synthesize(codes.identity[i : i + 1], pose[:, :1], light[:, :1], codes.background[:1])[0]
                for i in range(8)
            ]
        ).clamp(-1, 1)
        embedded = embedder(firsts)
        far = int(((embedded[1:] - embedded[:1]).square().sum(1)).argmax()) + 1
        codes = codes[[0, far]]
        source = g.synthesize(codes.identity[:1], pose, light, codes.background[:1])[0].clamp(-1, 1)
        # The same video, but frame i drawn with identity moved i/15 of the way to another person.
        drifting = torch.cat(
            [
                g.synthesize(
                    torch.lerp(codes.identity[:1], codes.identity[1:], i / 15),
                    pose[:, i : i + 1],
                    light[:, i : i + 1],
                    codes.background[:1],
                )[0]
                for i in range(16)
            ]
        ).clamp(-1, 1)
    same = temporal_identity(embedder(source), embedder(source))
    assert same["tg_id"] == pytest.approx(1) and same["tl_id"] == pytest.approx(1)
    drift = temporal_identity(embedder(source), embedder(drifting))
    # Faceless synthetic heads look alike to FaceNet: a whole change of person costs it 0.025 here.
    assert drift["tg_id"] < 0.99 and drift["tg_id"] < drift["tl_id"]
