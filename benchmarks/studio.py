"""The studio's latency: a control change to new pixels on the page, in a real headless Chromium.

    python benchmarks/studio.py [--moves 40] [--network builtin:synth64] [--screenshot docs/studio.png]

The page records, for each change, the time from the control's input event to its frame decoded and
handed to the next paint (window.studio.latencies). Rows: a seed moved and its frame awaited, for each
factor and the time slider; a 4x4 grid; a fast drag (a move every 5 ms, nothing awaited), where latest
wins: few frames render, and the last one shown is the last move's. Beside them, the server's own time
to render and encode a frame, without the browser. Needs Debian's chromium and playwright (dev extra).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import torch

import stylevid
from stylevid import threads
from stylevid.studio.app import StudioServer
from stylevid.studio.backend import Studio
from stylevid.studio.browser import StudioPage, browser_page, find_chromium


def _stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def _moves(studio: StudioPage, selector: str, values) -> list[float]:
    """Move a control to each value in turn, waiting for each frame; the page's latencies in ms."""
    out = []
    for value in values:
        studio.set_and_show(selector, value)
        out.append(studio.latest_latency_ms())
    return out


def _drag(studio: StudioPage, selector: str, values, interval_ms: float = 5) -> dict:
    """Moves every interval_ms without waiting, as a fast drag; then what the page showed."""
    before = studio.page.evaluate("window.studio.latencies.length")
    last = studio.page.evaluate(
        """async ([selector, values, interval]) => {
            const input = document.querySelector(selector);
            for (const value of values) {
                input.value = String(value);
                input.dispatchEvent(new Event("input", { bubbles: true }));
                await new Promise((r) => setTimeout(r, interval));
            }
            return window.studio.seq;
        }""",
        [selector, list(values), interval_ms],
    )
    studio.wait_for(last)
    time.sleep(0.3)  # any frame still on its way would show here
    shown = studio.page.evaluate("window.studio.latencies.length") - before
    final = studio.page.evaluate("window.studio.shown")
    return {
        "moves": len(values),
        "frames": shown,
        "last_is_final": final == last,
        "ms": studio.latest_latency_ms(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="builtin:synth64")
    parser.add_argument("--moves", type=int, default=40, help="slider moves per row")
    parser.add_argument("--screenshot", default=None, help="also save the page (grid mode) to this PNG")
    args = parser.parse_args()
    chromium, why = find_chromium()
    if chromium is None:
        raise SystemExit(f"benchmarks/studio.py: {why}")

    plan = threads.plan(None)  # as `stylevid studio` computes: on the cores other work leaves free
    with threads.applied(plan):
        rows = _measure(args, chromium)
    print(f"threads: {plan.threads} ({plan.reason})")
    width = max(len(r[0]) for r in rows)
    print(f"{'change':<{width}}  {'median ms':>9}  {'p90 ms':>7}")
    for name, median, p90, note in rows:
        print(f"{name:<{width}}  {median:9.1f}  {p90:7.1f}  {note}".rstrip())
    if args.screenshot:
        print(f"wrote {args.screenshot}")


def _measure(args: argparse.Namespace, chromium: str) -> list[tuple]:
    gen = stylevid.load(args.network)
    backend = Studio(gen, args.network)
    server = StudioServer(backend, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores,"
        f" load {os.getloadavg()[0]:.2f}; {args.network} at {gen.resolution}²; {args.moves} moves a row"
    )
    rows = []
    view = {
        "seeds": dict.fromkeys(backend.info()["factors"], 0),
        "psi": dict.fromkeys(backend.info()["factors"], 1.0),
    }
    server_ms = []
    for seed in range(args.moves):
        parsed = backend.parse({**view, "seeds": {**view["seeds"], "lighting": 500 + seed}})
        started = time.perf_counter()
        server.worker.run("benchmark", lambda parsed=parsed: backend.frame(parsed))
        server_ms.append(1000 * (time.perf_counter() - started))
    rows.append(("server only: sample + render + PNG on its worker", *_stats(server_ms), ""))
    try:
        with browser_page(chromium) as page:
            studio = StudioPage(page, server.url)
            values = [1 + i % 999 for i in range(args.moves)]
            for factor in ("identity", "pose", "lighting", "background"):
                ms = _moves(
                    studio, studio.factor(factor, "seed"), [100 * (factor != "identity") + v for v in values]
                )
                rows.append((f"{factor} seed moved", *_stats(ms), ""))
            ms = _moves(studio, "#time", [1 + i % 62 for i in range(args.moves)])
            rows.append(("time slider moved", *_stats(ms), ""))
            drag = [
                _drag(studio, studio.factor("identity", "seed"), range(300 + 50 * k, 350 + 50 * k))
                for k in range(5)
            ]
            rows.append((
                "fast drag: 50 moves 5 ms apart, last move to its frame",
                *_stats([d["ms"] for d in drag]),
                f"{statistics.mean(d['frames'] for d in drag):.1f} frames shown of 50 moves;"
                f" last frame = last move: {all(d['last_is_final'] for d in drag)}",
            ))  # fmt: skip
            page.check("#grid-on")
            studio.wait_for(page.evaluate("window.studio.seq"))
            ms = _moves(studio, studio.factor("lighting", "seed"), values[: max(5, args.moves // 4)])
            rows.append(("4x4 grid (identity x lighting), lighting seed moved", *_stats(ms), ""))
            if args.screenshot:
                studio.set_and_show(studio.factor("identity", "seed"), 3)
                page.screenshot(path=args.screenshot)
    finally:
        server.shutdown()
        server.server_close()
    return rows


if __name__ == "__main__":
    main()
