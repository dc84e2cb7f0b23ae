"""The studio in a real headless Chromium (Debian's package, driven by playwright): seeds move the image,
a locked identity holds while the light changes (read by the evaluation probes on the page's pixels), a
photo becomes the identity, a bad upload is a message. Screenshots of each step go to the test's folder.

Skipped, saying why, only where no Chromium can be had; STYLEVID_REQUIRE_BROWSER=1 (CI) fails instead.
"""

import io
import os
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

import stylevid
from stylevid.codes import Codes
from stylevid.metrics.leakage import ProbeReadout
from stylevid.studio.app import StudioServer
from stylevid.studio.backend import Studio
from stylevid.studio.browser import StudioPage, browser_page, find_chromium
from stylevid.video import to_uint8

FACTORS = ("identity", "pose", "lighting", "background")
FRAMES = 16


@pytest.fixture(scope="module")
def chromium():
    path, why = find_chromium()
    if path is None:
        if os.environ.get("STYLEVID_REQUIRE_BROWSER") == "1":
            pytest.fail(f"STYLEVID_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def server():
    studio = Studio(stylevid.load("builtin:synth64"), "builtin:synth64", frames=FRAMES)
    server = StudioServer(studio, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def readout():
    return ProbeReadout()


def as_frame(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [H, W, 3] -> [1, 3, H, W] in [-1, 1]."""
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1


def rendered(gen, seeds: dict, identity=None) -> np.ndarray:
    """What the page should show at t = 0 for these seeds (and an identity's codes)."""
    codes = Codes(**{f: getattr(gen.sample(1, seeds[f], FRAMES), f) for f in FACTORS})
    if identity is not None:
        codes = codes.replace(identity=identity)
    return to_uint8(gen.render(codes, [0.0])[0, 0])


def test_the_studio_in_a_browser(chromium, server, readout, tmp_path):
    gen = server.studio.gen
    with browser_page(chromium) as page:
        studio = StudioPage(page, server.url)
        shot = lambda name: page.screenshot(path=tmp_path / f"{name}.png")  # noqa: E731
        shot("01-loaded")
        start = studio.shown_pixels()
        np.testing.assert_array_equal(start, rendered(gen, dict.fromkeys(FACTORS, 0)))

        # A factor's seed moved: the image changes, to that seed's frame.
        studio.set_and_show(studio.factor("identity", "seed"), 7)
        moved = studio.shown_pixels()
        assert np.abs(moved.astype(int) - start).mean() > 5
        np.testing.assert_array_equal(moved, rendered(gen, {**dict.fromkeys(FACTORS, 0), "identity": 7}))
        shot("02-identity-seed-7")

        # Identity locked: its controls are off, "New sample" leaves it, and as the light changes the
        # probes' identity reading of the shown pixels holds, far closer than when identity changes.
        page.check(studio.factor("identity", "lock"))
        assert page.is_disabled(studio.factor("identity", "seed"))
        page.click("#new-all")
        studio.wait_for(page.evaluate("window.studio.seq"))
        assert page.input_value(studio.factor("identity", "seed-number")) == "7"
        for factor in ("pose", "lighting", "background"):
            studio.set_and_show(studio.factor(factor, "seed"), 0)

        def reading(factor: str) -> torch.Tensor:
            return readout(as_frame(studio.shown_pixels()))[factor]

        base = {f: reading(f) for f in ("identity", "lighting")}
        light_moves = {"identity": [], "lighting": []}
        for seed in (1, 2, 3):
            studio.set_and_show(studio.factor("lighting", "seed"), seed)
            held = {**dict.fromkeys(FACTORS, 0), "identity": 7, "lighting": seed}
            np.testing.assert_array_equal(studio.shown_pixels(), rendered(gen, held))  # the light moved
            for f in light_moves:
                light_moves[f].append(readout.distance(f, base[f], reading(f)).item())
        shot("03-identity-locked-lighting-3")
        page.uncheck(studio.factor("identity", "lock"))
        studio.set_and_show(studio.factor("lighting", "seed"), 0)
        identity_moves = []
        for seed in (8, 9, 10):
            studio.set_and_show(studio.factor("identity", "seed"), seed)
            identity_moves.append(readout.distance("identity", base["identity"], reading("identity")).item())
        # The lock holds identity's code; what its reading still moves is the model's own leakage, so the
        # means are compared (the built-in model's relit faces move its identity reading 1.61x the
        # renderer's floor: docs/results.md; seed by seed a light can move it more than another light
        # moves the light's reading — 1.06 against 0.88 here — which the frames above show is the model's).
        assert np.mean(light_moves["identity"]) < 0.5 * np.mean(identity_moves), (light_moves, identity_moves)
        assert np.mean(light_moves["lighting"]) > np.mean(light_moves["identity"]), light_moves

        # The astronaut's photo: inverted by the built-in encoder, its face is the identity shown.
        stream = io.BytesIO()
        Image.fromarray(data.astronaut()).save(stream, format="PNG")
        seq = page.evaluate("window.studio.seq")
        page.set_input_files("#upload", files=[{"name": "astronaut.png", "mimeType": "image/png",
                                                "buffer": stream.getvalue()}])  # fmt: skip
        page.wait_for_selector("#upload-message:has-text('identity: identity of astronaut.png')")
        studio.wait_for(seq + 1)
        person = gen.invert(images=[data.astronaut()]).identity[:1]
        seeds = {"identity": 10, "pose": 0, "lighting": 0, "background": 0}
        np.testing.assert_array_equal(studio.shown_pixels(), rendered(gen, seeds, person))
        shot("04-astronaut")

        # A text file named .png: the page says why, and the studio goes on rendering.
        page.set_input_files("#upload", files=[{"name": "notes.png", "mimeType": "image/png",
                                                "buffer": b"not a picture\n"}])  # fmt: skip
        page.wait_for_selector("#upload-message.error:has-text('is not a PNG or JPEG image')")
        shot("05-bad-upload")
        studio.set_and_show(studio.factor("pose", "seed"), 4)
        np.testing.assert_array_equal(studio.shown_pixels(), rendered(gen, {**seeds, "pose": 4}, person))

        # Play advances the time slider at the clip's rate; pause stops it.
        shown = page.evaluate("window.studio.shown")
        page.click("#play")
        page.wait_for_function("shown => window.studio.shown >= shown + 5", arg=shown)
        page.click("#play")
        assert page.inner_text("#play") == "play" and int(page.input_value("#time")) >= 5

        # Exports: the Python snippet is shown and downloaded.
        with page.expect_download() as download:
            page.click("[data-export='python']")
        assert download.value.suggested_filename == "stylevid_view.py"
        assert "gen.invert(images=['astronaut.png'])" in page.inner_text("#snippet")

        # The second tab: the built-in's stored leakage, drawn.
        page.click("button.tab[data-tab='leakage']")
        page.wait_for_function("document.querySelector('#leakage').naturalWidth > 0")
        assert (
            f"leakage {stylevid.load('builtin:synth64').metadata['leakage']['leakage']:.3f}"
            in page.inner_text("#leakage-source")
        )
        shot("06-leakage")
    assert all(
        (tmp_path / f"{n}.png").stat().st_size > 1000 for n in ("01-loaded", "04-astronaut", "06-leakage")
    )


class WithControls:
    """The built-in generator with the face layer's physical controls, as issue 22's generators have."""

    controls = {
        "yaw": {"factor": "pose", "low": -60.0, "high": 60.0, "unit": "deg", "default": 0.0},
        "intensity": {"factor": "lighting", "low": 0.0, "high": 2.0, "unit": "", "default": 1.0},
    }

    def __init__(self, gen):
        self._gen = gen

    def __getattr__(self, name):
        return getattr(self._gen, name)


def test_physical_sliders_appear_and_set_their_factor(chromium, monkeypatch):
    calls = []

    def with_pose(codes, **values):  # a stand-in: the pose held at a time given by the yaw
        calls.append(values)
        return codes.freeze("pose", abs(values["yaw"]) / 4)

    monkeypatch.setattr(Codes, "with_pose", with_pose, raising=False)
    studio = Studio(WithControls(stylevid.load("builtin:synth64")), "builtin:synth64", frames=FRAMES)
    server = StudioServer(studio, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with browser_page(chromium) as page:
            driver = StudioPage(page, server.url)
            assert page.is_visible("#physical")
            assert page.locator(".setting").count() == 2
            before = driver.shown_pixels()
            driver.set_and_show(".setting[data-setting='yaw'] .value", 48)
            assert calls[-1] == {"yaw": 48.0}
            assert page.is_checked(".setting[data-setting='yaw'] .set")
            assert np.abs(driver.shown_pixels().astype(int) - before).mean() > 1
            page.uncheck(".setting[data-setting='yaw'] .set")
            driver.wait_for(page.evaluate("window.studio.seq"))
            np.testing.assert_array_equal(driver.shown_pixels(), before)
    finally:
        server.shutdown()
        server.server_close()
