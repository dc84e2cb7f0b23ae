"""Command-line option types: argparse `type=` validators that name the bad value and the fix.

argparse turns their ArgumentTypeError into `stylevid <job>: error: argument --opt: <message>` and
exit status 2, so every bad number, seed list or device is refused where it is parsed, before any
work starts. UsageError is the same kind of mistake found later (options that do not fit together).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from stylevid.codes import TRAJECTORY_FACTORS
from stylevid.config import FACTORS

INT_MAX = 2**31 - 1  # counts and seeds beyond int32 are typos, and torch/numpy seeds stop near there
MAX_EDIT_SEEDS = 64  # an edit renders all its seeds side by side in one video


class UsageError(ValueError):
    """Options that each parse but do not fit together; the program exits with status 2."""


def _number(text: str, kind: Callable[[str], float], what: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}; pass a number like 4") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; pass one like 0.5")
    return value


def int_in(low: int, high: int = INT_MAX) -> Callable[[str], int]:
    """A validator of whole numbers in [low, high]."""

    def parse(text: str) -> int:
        value = _number(text, int, "a whole number")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text} is out of range; pass a whole number from {low} to {high}"
            )
        return value

    parse.__name__ = f"int_in_{low}_{high}"
    return parse


def float_in(low: float, high: float = math.inf, *, open_low: bool = False) -> Callable[[str], float]:
    """A validator of finite numbers in [low, high] (or (low, high] with open_low)."""

    def parse(text: str) -> float:
        value = _number(text, float, "a number")
        if value < low or value > high or (open_low and value == low):
            bracket = "(" if open_low else "["
            raise argparse.ArgumentTypeError(
                f"{text} is out of range; pass a number in {bracket}{low:g}, {high:g}]"
            )
        return value

    parse.__name__ = f"float_in_{low:g}_{high:g}"
    return parse


positive_int = int_in(1)
non_negative_int = int_in(0)
frame_rate = float_in(0.0, 1000.0, open_low=True)  # frames per second
frame_time = float_in(0.0, INT_MAX)  # a time in frames: no video is longer than INT_MAX frames
truncation = float_in(-2.0, 2.0)  # psi beyond +-2 leaves what the mapping network was trained on
learning_rate = float_in(0.0, 1.0, open_low=True)


class Seeds:
    """Seeds kept as ranges, so '0-100000000' costs nothing until iterated; iterate them, or len()."""

    def __init__(self, ranges: tuple[range, ...]):
        self.ranges = ranges

    def __iter__(self) -> Iterator[int]:
        for part in self.ranges:
            yield from part

    def __len__(self) -> int:
        return sum(len(part) for part in self.ranges)


def setting(text: str) -> float | tuple[float, float]:
    """A physical value for edit's --yaw etc.: a number held over the video, or FROM:TO, a sweep from the
    first frame to the last (write it --yaw=-40:40: argparse takes '-40:40' after a space for an option)."""
    parts = text.split(":")
    if len(parts) > 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or FROM:TO, e.g. 30 or -40:40")
    values = [_number(part, float, "a number") for part in parts]
    if not all(abs(v) <= 360 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is past 360; angles are in degrees, e.g. 30 or -40:40")
    return values[0] if len(values) == 1 else (values[0], values[1])


def seeds(text: str) -> Seeds:
    """'0-3,7' -> the seeds 0, 1, 2, 3, 7; each in [0, INT_MAX], a range low-high needs low <= high."""
    ranges = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise argparse.ArgumentTypeError(f"seeds {text!r}: write them like 0-7 or 0,3,5-6") from None
        if not 0 <= first <= last <= INT_MAX:
            raise argparse.ArgumentTypeError(
                f"seeds {text!r}: {part.strip()!r} is not low-high with 0 <= low <= high <= {INT_MAX};"
                " write them like 0-7 or 0,3,5-6"
            )
        ranges.append(range(first, last + 1))
    return Seeds(tuple(ranges))


def factor_seeds_of(factors: tuple[str, ...]) -> Callable[[str], tuple[str, list[int]]]:
    """A validator of 'identity:0,3' -> ('identity', [0, 3]): one of `factors` and the seeds edited."""

    def parse(text: str) -> tuple[str, list[int]]:
        factor, _, listed = text.partition(":")
        if factor not in factors or not listed:
            raise argparse.ArgumentTypeError(
                f"{text!r}: write FACTOR:SEED,SEED with FACTOR one of {', '.join(factors)}"
            )
        chosen = seeds(listed)
        if len(chosen) > MAX_EDIT_SEEDS:
            raise argparse.ArgumentTypeError(
                f"{text!r}: {len(chosen)} seeds; one edit shows at most {MAX_EDIT_SEEDS}, give fewer"
            )
        return factor, list(chosen)

    parse.__name__ = "factor_seeds"
    return parse


factor_seeds = factor_seeds_of(FACTORS)
moving_factor_seeds = factor_seeds_of(TRAJECTORY_FACTORS)  # only these move over time, and can be frozen


def _unwritable(text: str) -> str | None:
    """Why no video can be written to `text`, or None where its suffix is one stylevid writes."""
    from stylevid.video import WRITE_SUFFIXES  # noqa: PLC0415

    path = Path(text)
    if path.suffix.lower() in WRITE_SUFFIXES:
        return None
    return (
        f"{text!r}: cannot write a {path.suffix or 'suffix-less'} file; name a"
        f" {', '.join(WRITE_SUFFIXES)} file, e.g. {path.with_suffix('.mp4')}"
    )


def video_file(text: str) -> str:
    """A path stylevid can write a video to: its suffix is .mp4, .gif or .png (a sheet of frames)."""
    refusal = _unwritable(text)
    if refusal:
        raise argparse.ArgumentTypeError(refusal)
    return text


def video_out(out: str, count: int, what: str) -> Path | None:
    """--out of a command that writes `count` videos: the file it names (one video), or None: a folder.

    A suffix names a file, which must be one stylevid writes; a path without one, or an existing
    folder, is a folder (the caller names the files in it).
    """
    path = Path(out)
    if not path.suffix or path.is_dir():
        return None
    refusal = _unwritable(out)
    if refusal:
        raise UsageError(f"--out {refusal} (or a folder without a suffix)")
    if count != 1:
        raise UsageError(
            f"--out {out} names one file, and {what} makes {count} videos; pass a folder, e.g."
            f" --out {path.with_suffix('')}"
        )
    return path


def require_files(option: str, paths: list[str]) -> None:
    """Fail before any work (FileNotFoundError, exit status 1) where a file `option` names is missing."""
    for path in paths:
        if not Path(path).exists():
            raise FileNotFoundError(f"{option} {path}: no such file; check the path")


def device(text: str) -> str:
    """A torch device that exists here: cpu, cuda, cuda:N (N below torch.cuda.device_count()), mps."""
    refusal = f"{text!r} is not a device stylevid can run on here; pass --device cpu or cuda (or cuda:N)"
    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(refusal) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has no CUDA GPU (torch.cuda.device_count() is 0); pass --device cpu"
            )
        if parsed.index is not None and parsed.index >= count:
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; pass one"
            )
    elif parsed.type != "cpu" and not (parsed.type == "mps" and torch.backends.mps.is_available()):
        raise argparse.ArgumentTypeError(refusal)
    return text


def comma_list(text: str) -> list[str]:
    """'a, b' -> ['a', 'b']; an empty list is refused."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing; pass comma-separated names like a,b")
    return names


def int_list(count: int) -> Callable[[str], tuple[int, ...]]:
    """A validator of `count` comma-separated positive whole numbers, e.g. '16,32,64,128'."""

    def parse(text: str) -> tuple[int, ...]:
        parts = [part.strip() for part in text.split(",")]
        if len(parts) != count:
            raise argparse.ArgumentTypeError(
                f"{text!r} has {len(parts)} values; pass {count} comma-separated whole numbers"
            )
        return tuple(positive_int(part) for part in parts)

    parse.__name__ = f"int_list_{count}"
    return parse


def add_threads(command: argparse.ArgumentParser) -> None:
    """--threads: the threads torch computes on (stylevid.threads chooses when it is not given)."""
    command.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="threads to compute on (default: the free cores this process may use; OMP_NUM_THREADS if set)",
    )


def add_quiet(command: argparse.ArgumentParser) -> None:
    """--quiet: no progress bars (they are shown on stderr only when it is a terminal)."""
    command.add_argument("--quiet", action="store_true", help="no progress bars on stderr")


def progress(args: argparse.Namespace) -> bool:
    """Whether a command shows progress bars: stderr is a terminal and --quiet was not given.

    A subcommand registered on a parser of its own (not through stylevid.cli) has no --quiet.
    """
    return not getattr(args, "quiet", False) and sys.stderr.isatty()
