"""The loaded network's leakage, for the studio's second tab: a measured result, drawn, or why there is none.

Measuring takes minutes (`stylevid metrics --metrics leakage`), so the studio only shows results that
exist: the one a built-in model carries in its metadata, else the newest leakage line of the
metrics.jsonl that `stylevid metrics` wrote beside the checkpoint.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

from stylevid.metrics.compute import RESULTS_FILE
from stylevid.metrics.leakage import leakage_caption, plot_leakage
from stylevid.metrics.weights import file_sha256


def find_leakage(metadata: Mapping, checkpoint: Path | None) -> tuple[dict | None, str]:
    """A leakage result (with 'share' and 'effect') and where it came from, or None and how to measure it."""
    stored = metadata.get("leakage")
    if isinstance(stored, dict) and "share" in stored and "effect" in stored:
        return stored, "measured when the model was built (the checkpoint's metadata)"
    results = None if checkpoint is None else checkpoint.parent / RESULTS_FILE
    if results is not None and results.is_file():
        sha256 = file_sha256(checkpoint)  # the folder's other snapshots write to the same file
        for line in reversed(results.read_text(encoding="utf-8").splitlines()):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if (
                isinstance(record, dict)
                and record.get("metric") == "leakage"
                and record.get("network_sha256") == sha256
                and "share" in (record.get("results") or {})
            ):
                return record[
                    "results"
                ], f"{results.name} beside the checkpoint ({record.get('date', 'undated')})"
    network = checkpoint if checkpoint is not None else "NETWORK"
    return None, (
        "not measured: the leakage of this network has not been computed. Run"
        f" `stylevid metrics --network {network} --metrics leakage` (a few minutes on a CPU) and restart"
        " the studio"
    )


def leakage_png(result: Mapping, title: str) -> bytes:
    """The heatmap of a leakage result as PNG bytes: the figure `stylevid metrics` draws."""
    with tempfile.TemporaryDirectory() as folder:
        return plot_leakage(result, Path(folder) / "leakage.png", title=title).read_bytes()


def leakage_summary(result: Mapping | None, source: str) -> dict:
    """What the page prints beside the heatmap: the caption's words and where the numbers came from."""
    return {
        "measured": result is not None,
        "caption": leakage_caption(result) if result else "",
        "source": source,
    }
