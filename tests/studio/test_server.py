"""The studio's server without a browser: the view's checks, latest-wins, codes, exports, uploads, safety."""

import base64
import http.client
import io
import json
import socket
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import stylevid
from stylevid.cli import parser
from stylevid.codes import Codes
from stylevid.studio.app import StudioServer
from stylevid.studio.backend import Studio, check_controls
from stylevid.studio.heatmap import find_leakage
from stylevid.studio.view import build_codes, parse_view
from stylevid.studio.worker import LatestWins, Superseded

FACTORS = ("identity", "pose", "lighting", "background")
CONTROLS = {
    "yaw": {"factor": "pose", "low": -60.0, "high": 60.0, "unit": "°", "default": 0.0},
    "intensity": {"factor": "lighting", "low": 0.0, "high": 2.0, "unit": "", "default": 1.0},
}


def view_json(seeds=(1, 2, 3, 4), psi=1.0, **extra) -> dict:
    return {"seeds": dict(zip(FACTORS, seeds, strict=True)), "psi": dict.fromkeys(FACTORS, psi), **extra}


# --- what the page sends ------------------------------------------------------------------------


def test_a_view_is_parsed_with_every_value_checked():
    grid = {"rows": "identity", "columns": "lighting", "n": 3}
    view = parse_view(view_json(t=5, settings={"yaw": 20}, grid=grid), frames=64, controls=CONTROLS)
    assert view.seeds == {"identity": 1, "pose": 2, "lighting": 3, "background": 4}
    assert view.t == 5.0 and view.settings == {"yaw": 20.0} and view.grid.n == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seeds": {"identity": True, "pose": 0, "lighting": 0, "background": 0}}, r"seeds.identity is True"),
        ({"seeds": {"identity": -1, "pose": 0, "lighting": 0, "background": 0}}, r"seeds.identity is -1"),
        ({"seeds": {"identity": 0, "pose": 0, "lighting": 0}}, r"no seed or psi for background"),
        ({"seeds": {**dict.fromkeys(FACTORS, 0), "hair": 1}}, r"unknown names \['hair'\]"),
        ({"psi": dict.fromkeys(FACTORS, 3.0)}, r"psi.identity=3 is outside \[-2, 2\]"),
        ({"psi": dict.fromkeys(FACTORS, float("nan"))}, r"psi.identity is nan"),
        ({"t": 64}, r"t=64 is outside \[0, 63\]"),
        ({"settings": {"roll": 3}}, r"settings has unknown names \['roll'\]; known: yaw, intensity"),
        ({"settings": {"yaw": 90}}, r"yaw=90 is outside \[-60, 60\]"),
        ({"grid": {"rows": "pose", "columns": "pose", "n": 4}}, r"both vary pose"),
        ({"grid": {"rows": "pose", "columns": "identity", "n": 9}}, r"grid.n is 9; expected 2 to 6"),
        ({"upload": ["../../etc/passwd"]}, r"upload is .*expected the id"),
        ({"path": "/etc/passwd"}, r"unknown names \['path'\]"),
    ],
)
def test_a_bad_view_is_refused_naming_the_value(change, message):
    with pytest.raises(ValueError, match=message):
        parse_view({**view_json(), **change}, frames=64, controls=CONTROLS)


def test_the_generators_controls_are_checked():
    assert check_controls(CONTROLS)["yaw"]["unit"] == "°"
    with pytest.raises(ValueError, match=r"control 'yaw' .*factor one of pose, lighting"):
        check_controls({"yaw": {**CONTROLS["yaw"], "factor": "identity"}})
    with pytest.raises(ValueError, match=r"control 'yaw' .*low < high"):
        check_controls({"yaw": {**CONTROLS["yaw"], "low": 60.0}})


# --- latest wins ---------------------------------------------------------------------------------


def test_a_waiting_job_is_replaced_by_the_newer_one_of_its_key():
    worker, release, ran = LatestWins(), threading.Event(), []
    try:
        busy = worker.submit("other", lambda: release.wait(5))
        time.sleep(0.05)  # the worker is inside the blocking job
        stale = [worker.submit("slider", lambda i=i: ran.append(i) or i) for i in range(5)]
        export = worker.submit("export", lambda: "kept")
        release.set()
        assert busy.result(5) is True
        for future in stale[:-1]:
            with pytest.raises(Superseded):
                future.result(5)
        assert stale[-1].result(5) == 4 and export.result(5) == "kept"
        assert ran == [4]  # the four stale frames never rendered
    finally:
        worker.close()


def test_a_failing_job_reports_to_its_caller_and_the_worker_goes_on():
    worker = LatestWins()
    try:
        with pytest.raises(ZeroDivisionError):
            worker.run("a", lambda: 1 / 0, timeout=5)
        assert worker.run("a", lambda: "alive", timeout=5) == "alive"
    finally:
        worker.close()


# --- codes of a view ------------------------------------------------------------------------------


def test_each_factor_comes_from_its_own_seed_and_settings_go_to_their_factor(video_generator, monkeypatch):
    frames = 20
    calls = []
    monkeypatch.setattr(
        Codes, "with_pose", lambda self, **v: calls.append(("pose", v)) or self, raising=False
    )
    monkeypatch.setattr(
        Codes, "with_light", lambda self, **v: calls.append(("light", v)) or self, raising=False
    )
    view = parse_view(view_json(settings={"yaw": 10, "intensity": 1.5}), frames, CONTROLS)
    codes = build_codes(view, lambda f, s, p: video_generator.sample(1, s, frames, p), None, CONTROLS)
    for factor, seed in view.seeds.items():
        expected, got = getattr(video_generator.sample(1, seed, frames), factor), getattr(codes, factor)
        if factor in ("pose", "lighting"):
            expected, got = expected.z, got.z
        assert torch.equal(expected, got)
    assert calls == [("pose", {"yaw": 10.0}), ("light", {"intensity": 1.5})]


def test_a_grid_varies_its_two_factors_along_rows_and_columns(video_generator):
    frames = 20
    view = parse_view(view_json(grid={"rows": "identity", "columns": "lighting", "n": 3}), frames, {})
    codes = build_codes(view, lambda f, s, p: video_generator.sample(1, s, frames, p), None, {})
    assert len(codes) == 9
    identity = [video_generator.sample(1, 1 + i, frames).identity for i in range(3)]
    lighting = [video_generator.sample(1, 3 + j, frames).lighting.z for j in range(3)]
    for i in range(3):
        for j in range(3):
            assert torch.equal(codes.identity[3 * i + j], identity[i][0])
            assert torch.equal(codes.lighting.z[3 * i + j], lighting[j][0])
            assert torch.equal(codes.pose.z[3 * i + j], video_generator.sample(1, 2, frames).pose.z[0])


# --- the server, in process, on the built-in model -------------------------------------------------


@pytest.fixture(scope="module")
def server():
    gen = stylevid.load("builtin:synth64")
    studio = Studio(gen, "builtin:synth64", frames=16, fps=25.0)
    server = StudioServer(studio, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method, path, body=None, headers=None, raw=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers={**sent, **(headers or {})})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response, payload


def frame(server, view) -> np.ndarray:
    response, payload = request(server, "POST", "/api/frame", {"client": "test", "seq": 1, "view": view})
    assert response.status == 200, payload
    assert response.getheader("Content-Type") == "image/png"
    return np.asarray(Image.open(io.BytesIO(payload)))


def test_the_page_and_the_info_it_builds_from(server):
    response, page = request(server, "GET", "/")
    assert response.status == 200 and b"stylevid studio" in page
    response, info = request(server, "GET", "/api/info")
    info = json.loads(info)
    assert info["resolution"] == 64 and info["frames"] == 16 and info["factors"] == list(FACTORS)
    assert {"yaw", "pitch", "roll", "azimuth"} <= set(info["controls"])  # the built-in's face layer
    shipped = stylevid.load("builtin:synth64").metadata["leakage"]["leakage"]
    assert info["leakage"]["measured"] and f"leakage {shipped:.3f}" in info["leakage"]["caption"]
    response, heatmap = request(server, "GET", "/api/leakage.png")
    assert response.status == 200 and Image.open(io.BytesIO(heatmap)).size[0] > 300


def test_a_frame_is_the_views_frame_and_a_seed_changes_it(server):
    first = frame(server, view_json(t=3))
    assert first.shape == (64, 64, 3)
    np.testing.assert_array_equal(first, frame(server, view_json(t=3)))
    gen = server.studio.gen
    codes = Codes(**{f: getattr(gen.sample(1, s, 16), f) for f, s in zip(FACTORS, (1, 2, 3, 4), strict=True)})
    expected = stylevid.video.to_uint8(gen.render(codes, [3.0])[0, 0])
    np.testing.assert_array_equal(first, expected)
    assert np.abs(frame(server, view_json(seeds=(9, 2, 3, 4), t=3)).astype(int) - first).mean() > 5


def test_a_grid_frame_is_n_by_n_cells(server):
    grid = frame(server, view_json(grid={"rows": "identity", "columns": "lighting", "n": 3}))
    assert grid.shape == (3 * 64 + 2 * 2, 3 * 64 + 2 * 2, 3)


def test_bad_requests_are_refused_and_the_server_goes_on(server):
    response, payload = request(server, "POST", "/api/frame", {"view": view_json(t=99)})
    assert response.status == 400 and "t=99 is outside [0, 15]" in json.loads(payload)["error"]
    response, _ = request(server, "POST", "/api/frame", raw=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status == 415
    response, payload = request(server, "POST", "/api/frame", raw=b"x" * 70000)
    assert response.status == 413 and "more than" in json.loads(payload)["error"]
    response, _ = request(server, "POST", "/api/frame", raw=b"not json")
    assert response.status == 400
    response, _ = request(server, "GET", "/../../etc/passwd")
    assert response.status == 404
    response, _ = request(server, "GET", "/api/info", headers={"Host": "attacker.example:80"})
    assert response.status == 403  # DNS rebinding: another site's name pointing here
    response, payload = request(server, "POST", "/api/export", {"kind": "../x", "view": view_json()})
    assert response.status == 400 and "unknown export '../x'" in json.loads(payload)["error"]
    assert frame(server, view_json()).shape == (64, 64, 3)


def upload(server, files):
    body = {"files": [{"name": name, "data": base64.b64encode(raw).decode()} for name, raw in files]}
    response, payload = request(server, "POST", "/api/upload", body)
    return response.status, json.loads(payload)


def png_bytes(array) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(array).save(stream, format="PNG")
    return stream.getvalue()


def test_bad_uploads_are_refused_with_a_message(server):
    status, answer = upload(server, [("notes.png", b"this is text, not a picture\n")])
    assert status == 400 and "'notes.png' is not a PNG or JPEG image" in answer["error"]
    status, answer = upload(server, [("cut.png", png_bytes(data.astronaut())[:200])])
    assert status == 400 and "'cut.png'" in answer["error"]
    status, answer = upload(server, [("sky.png", png_bytes(np.full((96, 96, 3), 200, np.uint8)))])
    assert status == 400 and "no face found" in answer["error"]
    status, answer = upload(server, [])
    assert status == 400 and "holds no files" in answer["error"]
    status, answer = upload(server, [(f"{i}.png", b"") for i in range(9)])
    assert status == 400 and "at most 8" in answer["error"]
    wide = Image.new("RGB", (5000, 4000))
    stream = io.BytesIO()
    wide.save(stream, format="PNG")
    status, answer = upload(server, [("huge.png", stream.getvalue())])
    assert status == 400 and "5000x4000 pixels" in answer["error"]
    response, payload = request(server, "POST", "/api/frame", {"view": view_json(upload="forgotten")})
    assert response.status == 400 and "no uploaded photo has id 'forgotten'" in json.loads(payload)["error"]


def test_an_uploaded_face_becomes_the_identity(server):
    status, answer = upload(server, [("astronaut.png", png_bytes(data.astronaut()))])
    assert status == 200, answer
    person = server.studio.gen.invert(images=[data.astronaut()])
    seeded, photo = frame(server, view_json()), frame(server, view_json(upload=answer["upload"]))
    gen = server.studio.gen
    codes = Codes(**{f: getattr(gen.sample(1, s, 16), f) for f, s in zip(FACTORS, (1, 2, 3, 4), strict=True)})
    expected = stylevid.video.to_uint8(gen.render(codes.replace(identity=person.identity[:1]), [0.0])[0, 0])
    np.testing.assert_array_equal(photo, expected)
    assert np.abs(photo.astype(int) - seeded).mean() > 2


def export(server, kind, view):
    response, payload = request(server, "POST", "/api/export", {"kind": kind, "view": view})
    assert response.status == 200, payload
    return response, payload


def test_exports_are_the_views_files(server, tmp_path):
    view = view_json(t=5)
    response, png = export(server, "png", view)
    assert "stylevid-frame.png" in response.getheader("Content-Disposition")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), frame(server, view))
    for kind in ("mp4", "gif"):
        _, clip = export(server, kind, view)
        (tmp_path / f"clip.{kind}").write_bytes(clip)
        assert stylevid.read_video(tmp_path / f"clip.{kind}").shape == (16, 3, 64, 64)
    _, codes = export(server, "codes", view)
    (tmp_path / "codes.safetensors").write_bytes(codes)
    loaded = stylevid.load_codes(tmp_path / "codes.safetensors")
    assert torch.equal(loaded.identity, server.studio.gen.sample(1, 1, 16).identity)


def test_the_python_snippet_renders_what_the_page_shows(server, tmp_path, monkeypatch):
    view = view_json(seeds=(5, 6, 7, 8), psi=0.7, t=4, grid={"rows": "pose", "columns": "background", "n": 2})
    _, snippet = export(server, "python", view)
    text = snippet.decode()
    assert "stylevid.load('builtin:synth64')" in text and "psi = {'identity': 0.7" in text
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(text, "stylevid_view.py", "exec"), namespace)  # noqa: S102 - the code under test
    shown = frame(server, view)
    written = np.asarray(Image.open(tmp_path / "frame.png").convert("RGB"))
    np.testing.assert_array_equal(written, shown)
    assert (tmp_path / "clip.mp4").is_file()


# --- the leakage tab, the command ----------------------------------------------------------------


def test_a_checkpoints_leakage_is_read_beside_it_or_said_to_be_unmeasured(video_generator, tmp_path):
    path = video_generator.save(tmp_path / "net.safetensors")
    result, source = find_leakage({}, path)
    assert result is None and f"stylevid metrics --network {path} --metrics leakage" in source
    from stylevid.metrics.weights import file_sha256  # noqa: PLC0415

    measured = {"share": [[1.0]], "effect": [[1.0]], "leakage": 0.1}
    lines = [
        {"metric": "leakage", "network_sha256": "another snapshot", "results": {**measured, "leakage": 0.9}},
        {"metric": "leakage", "network_sha256": file_sha256(path), "results": measured, "date": "2026-01-01"},
        {"metric": "fvd2048_16f", "network_sha256": file_sha256(path), "results": {}},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result, source = find_leakage({}, path)
    assert result == measured and "metrics.jsonl" in source


def test_the_command_line_and_a_port_in_use():
    args = parser().parse_args(["studio"])
    assert (args.network, args.port, args.host) == ("builtin:synth64", 7860, "127.0.0.1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        studio = Studio(stylevid.load("builtin:synth64"), "builtin:synth64")
        with pytest.raises(OSError, match=r"cannot listen on 127.0.0.1:\d+ .*pass another --port"):
            StudioServer(studio, "127.0.0.1", taken.getsockname()[1])
