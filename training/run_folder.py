"""A run folder's own files: latest.json (the last complete snapshot), stats.jsonl, and their upkeep."""

from __future__ import annotations

import json
import re
from pathlib import Path

from stylevid.atomic import staged_target, write_atomically

LATEST = "latest.json"
STATS = "stats.jsonl"


def read_latest(run_dir: str | Path) -> dict:
    """The run's latest.json: its last complete snapshot, the progress there, its preset and data."""
    try:
        return json.loads((Path(run_dir) / LATEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FileNotFoundError(
            f"{run_dir} has no readable {LATEST}: is it a stylevid run folder? ({exc})"
        ) from exc


# The run's own files: only their staged writes (stylevid.atomic.temp_path) are ever removed.
_RUN_FILE = re.compile(
    r"latest\.json|stats\.jsonl|snapshot-\d{9}(?:-state\.safetensors|\.safetensors|-samples\.mp4)"
)
_WEIGHTS = re.compile(r"snapshot-(\d{9})\.safetensors")


def tidy_run_folder(run_dir: str | Path) -> list[Path]:
    """Remove what killed snapshots left in a run folder; returns the files removed.

    Those are the temp files of the run's own files, and weights newer than latest.json without their
    -state file (a snapshot cut short, e.g. by a full disk). Other files, the user's, stay.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    latest = read_latest(run_dir) if (run_dir / LATEST).exists() else {}
    named = {latest.get("snapshot"), latest.get("state")}
    newest = round(latest.get("kimg", -1) * 1000)
    removed = []
    for path in sorted(run_dir.iterdir()):
        weights = _WEIGHTS.fullmatch(path.name)
        incomplete = (
            weights is not None
            and path.name not in named
            and int(weights[1]) > newest
            and not (run_dir / f"snapshot-{weights[1]}-state.safetensors").exists()
        )
        staged = staged_target(path.name)
        left_behind = staged is not None and _RUN_FILE.fullmatch(staged) is not None
        if path.is_file() and (incomplete or left_behind):
            path.unlink()
            removed.append(path)
    return removed


def keep_ticks_up_to(path: Path, tick: int) -> None:
    """Drop the records of stats.jsonl past `tick` (logged by a run that crashed after its snapshot)."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and json.loads(line).get("tick", 0) <= tick]
    if len(kept) != len(lines):
        write_atomically(path, "".join(kept).encode())
