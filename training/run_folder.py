"""A run folder's own files: latest.json (the last complete snapshot), stats.jsonl, and their upkeep."""

from __future__ import annotations

import json
import re
from pathlib import Path

from stylevid.atomic import staged_target, write_atomically

LATEST = "latest.json"
STATS = "stats.jsonl"


def read_latest(run_dir: str | Path, progress: str = "kimg") -> dict:
    """The run's latest.json: its last complete snapshot, the progress there, its preset and data.

    progress: the field that counts the run's progress besides its step: 'kimg' for a generator's
    run, '' for an encoder's (its progress is its step).
    """
    path = Path(run_dir) / LATEST
    try:
        latest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FileNotFoundError(
            f"{run_dir} has no readable {LATEST}: is it a stylevid run folder? ({exc})"
        ) from exc
    fields = {**_LATEST_FIELDS, **({progress: (int, float)} if progress else {})}
    _check_fields(path, latest, fields, _LATEST_OPTIONAL)
    for key in ("snapshot", "state"):
        if Path(latest[key]).name != latest[key]:
            raise ValueError(f"{path}: {key!r} must name a file in the run folder, not {latest[key]!r}")
    if latest.get("dataset") is not None:
        _check_fields(path, latest["dataset"], {"path": (str,)}, prefix="dataset.")
    return latest


# What latest.json must hold (older runs lack the optional ones): field -> accepted types.
_LATEST_FIELDS = {"snapshot": (str,), "state": (str,), "step": (int,)}
_LATEST_OPTIONAL = {
    "tick": (int,),
    "nimg": (int,),
    "preset": (str, type(None)),
    "dataset": (dict, type(None)),
}


def _check_fields(
    path: Path, record, fields: dict, optional: dict | None = None, prefix: str = "", line: int | None = None
) -> None:
    """Refuse a JSON record of the wrong shape, naming the file, the field and what was expected."""
    where = f"{path}" if line is None else f"{path}, line {line}"
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, found {type(record).__name__}; {_ADVICE}")
    for name, types in {**fields, **(optional or {})}.items():
        if name not in record:
            if name in fields:
                raise ValueError(f"{where}: the field '{prefix}{name}' is missing; {_ADVICE}")
            continue
        value = record[name]
        # JSON's true/false are Python ints; no field here is a boolean.
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ValueError(
                f"{where}: the field '{prefix}{name}' is {value!r}, expected {expected}; {_ADVICE}"
            )


_ADVICE = "the file was not written by stylevid or was edited: restore it, or start a new run"


# The run's own files: only their staged writes (stylevid.atomic.temp_path) are ever removed. A generator's
# snapshots are named by the clips seen (snapshot-NIMG), an encoder's by its step (encoder-STEP).
_RUN_FILE = re.compile(
    r"latest\.json|stats\.jsonl|snapshot-\d{9}(?:-state\.safetensors|\.safetensors|-samples\.mp4)"
    r"|encoder-\d{7}(?:-state)?\.safetensors"
)
_WEIGHTS = {
    "kimg": re.compile(r"snapshot-(\d{9})\.safetensors"),
    "": re.compile(r"encoder-(\d{7})\.safetensors"),
}


def tidy_run_folder(run_dir: str | Path, progress: str = "kimg") -> list[Path]:
    """Remove what killed snapshots left in a run folder; returns the files removed.

    Those are the temp files of the run's own files, and weights newer than latest.json without their
    -state file (a snapshot cut short, e.g. by a full disk). Other files, the user's, stay. progress:
    as read_latest's, 'kimg' for a generator's run folder, '' for an encoder's.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    latest = read_latest(run_dir, progress) if (run_dir / LATEST).exists() else {}
    named = {latest.get("snapshot"), latest.get("state")}
    newest = round(latest.get("kimg", -1) * 1000) if progress else latest.get("step", -1)
    removed = []
    for path in sorted(run_dir.iterdir()):
        weights = _WEIGHTS[progress].fullmatch(path.name)
        incomplete = (
            weights is not None
            and path.name not in named
            and int(weights[1]) > newest
            and not path.with_name(path.name.replace(".safetensors", "-state.safetensors")).exists()
        )
        staged = staged_target(path.name)
        left_behind = staged is not None and _RUN_FILE.fullmatch(staged) is not None
        if path.is_file() and (incomplete or left_behind):
            path.unlink()
            removed.append(path)
    return removed


def keep_ticks_up_to(path: Path, tick: int) -> None:
    """Drop the records of stats.jsonl past `tick` (logged by a run that crashed after its snapshot).

    A last line cut short (the process killed while appending it) is dropped too.
    """
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines) and not line.endswith("\n"):
                continue
            raise ValueError(f"{path}, line {number}: not JSON ({exc}); {_ADVICE}") from exc
        _check_fields(path, record, {}, {"tick": (int,)}, line=number)
        if record.get("tick", 0) <= tick:
            kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        write_atomically(path, "".join(kept).encode())
