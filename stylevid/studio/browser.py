"""The studio page in a real headless browser, for the browser test and benchmarks/studio.py: the system's
Chromium (Debian's `chromium` package) driven by playwright, which never downloads a browser of its own.

Chromium is started with a fresh profile and without its background services (updates, sync, QUIC,
first-run), so on a closed network it sends nothing beyond the studio's own address.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

CHROMIUM_ENV = "STYLEVID_CHROMIUM"
CHROMIUM_DEFAULT = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> tuple[str | None, str]:
    """The Chromium to drive ($STYLEVID_CHROMIUM, else /usr/bin/chromium) and playwright, or None and why."""
    path = os.environ.get(CHROMIUM_ENV) or CHROMIUM_DEFAULT
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        found = shutil.which("chromium")
        if found is None:
            return None, (
                f"no Chromium at {path} (set {CHROMIUM_ENV}) or on PATH: install Debian's `chromium` package"
                " (`make test` does where apt-get may run)"
            )
        path = found
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        return None, "the playwright package is missing: `pip install -e '.[dev]'` installs it"
    return path, ""


@contextlib.contextmanager
def browser_page(chromium: str, width: int = 1280, height: int = 900) -> Iterator:
    """A playwright Page in a headless Chromium with a fresh profile; both are gone afterwards."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="stylevid-chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            headless=True,
            args=list(FLAGS),
            viewport={"width": width, "height": height},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


class StudioPage:
    """The studio page's controls and image, as a user moves and sees them."""

    def __init__(self, page, url: str, timeout_ms: float = 30_000):
        self.page = page
        page.set_default_timeout(timeout_ms)
        page.goto(url)
        self.wait_for(1)

    def wait_for(self, seq: int) -> None:
        """Until the frame of change `seq` (or a later one) is on the page."""
        self.page.wait_for_function("seq => window.studio.shown >= seq", arg=seq)

    def move(self, selector: str, value: float) -> int:
        """Set an input (a slider) as a drag does, firing 'input'; returns the change's number."""
        return self.page.evaluate(
            """([selector, value]) => {
                const input = document.querySelector(selector);
                input.value = String(value);
                input.dispatchEvent(new Event("input", { bubbles: true }));
                return window.studio.seq;
            }""",
            [selector, value],
        )

    def set_and_show(self, selector: str, value: float) -> None:
        """move() and wait for its frame."""
        self.wait_for(self.move(selector, value))

    def factor(self, factor: str, control: str) -> str:
        """The selector of a factor's control: 'seed', 'seed-number', 'psi', 'new', 'lock'."""
        return f'fieldset.factor[data-factor="{factor}"] .{control}'

    def latest_latency_ms(self) -> float:
        return self.page.evaluate("window.studio.latencies.at(-1)")

    def shown_pixels(self) -> np.ndarray:
        """uint8 [H, W, 3]: the image the page shows, read back from the page at its own size."""
        flat = self.page.evaluate(
            """() => {
                const img = document.querySelector("#frame");
                const canvas = document.createElement("canvas");
                [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
                const context = canvas.getContext("2d");
                context.drawImage(img, 0, 0);
                const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
                return [canvas.height, canvas.width, Array.from(rgba)];
            }"""
        )
        height, width, rgba = flat
        return np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[..., :3]
