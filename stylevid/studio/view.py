"""What the page shows, as data: per factor a seed and a truncation, the time, the physical settings, an
uploaded identity, a grid. Parsed from the page's JSON with every value checked, and turned into codes.

The page is untrusted input: a View holds numbers in range, known names and an upload's id, never a
path or anything executed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from stylevid.codes import Codes
from stylevid.config import FACTORS
from stylevid.options import INT_MAX

PSI_RANGE = (-2.0, 2.0)  # as --psi (stylevid.options.truncation)
GRID_SIZES = range(2, 7)  # a grid of n x n cells, 2 to 6 per side
# Physical settings by the factor whose code they replace, and the Codes method that sets them.
SETTERS = {"pose": "with_pose", "lighting": "with_light"}


@dataclass(frozen=True)
class Grid:
    """n x n cells: `rows` takes seeds seed, seed+1, ... down the rows, `columns` along each row."""

    rows: str
    columns: str
    n: int


@dataclass(frozen=True)
class View:
    """One view of the page: seeds and psi per factor, time t in frames, settings {name: value}, the
    id of an uploaded identity (replacing the identity seed), and a grid or None."""

    seeds: dict[str, int]
    psi: dict[str, float]
    t: float = 0.0
    settings: dict[str, float] = field(default_factory=dict)
    upload: str | None = None
    grid: Grid | None = None


def _number(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} is {value!r}; expected a number in [{low:g}, {high:g}]")
    if not low <= value <= high:
        raise ValueError(f"{name}={value:g} is outside [{low:g}, {high:g}]")
    return float(value)


def _seed(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT_MAX:
        raise ValueError(f"{name} is {value!r}; expected a whole number in [0, {INT_MAX}]")
    return value


def _object(name: str, value, keys) -> dict:
    if value is None:
        raise ValueError(f"the view has no {name}; give an object with {', '.join(keys)}")
    if not isinstance(value, dict):
        raise ValueError(f"{name} is {value!r}; expected an object with {', '.join(keys)}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ValueError(f"{name} has unknown names {unknown}; known: {', '.join(keys)}")
    return value


def parse_view(data, frames: int, controls: Mapping[str, Mapping]) -> View:
    """A View from the page's JSON; `frames`: the clip's length, `controls`: the generator's settings.

    Anything missing, unknown or out of range is a ValueError saying which value and what is allowed."""
    data = _object("the view", data, ("seeds", "psi", "t", "settings", "upload", "grid"))
    seeds = _object("seeds", data.get("seeds"), FACTORS)
    psi = _object("psi", data.get("psi"), FACTORS)
    missing = [f for f in FACTORS if f not in seeds or f not in psi]
    if missing:
        raise ValueError(f"the view sets no seed or psi for {', '.join(missing)}; every factor needs both")
    settings = _object("settings", data.get("settings", {}), controls)
    upload = data.get("upload")
    if upload is not None and not isinstance(upload, str):
        raise ValueError(f"upload is {upload!r}; expected the id the upload returned")
    return View(
        seeds={f: _seed(f"seeds.{f}", seeds[f]) for f in FACTORS},
        psi={f: _number(f"psi.{f}", psi[f], *PSI_RANGE) for f in FACTORS},
        t=_number("t", data.get("t", 0), 0, frames - 1),
        settings={
            name: _number(name, value, controls[name]["low"], controls[name]["high"])
            for name, value in settings.items()
        },
        upload=upload,
        grid=None if data.get("grid") is None else _grid(data["grid"]),
    )


def _grid(data) -> Grid:
    data = _object("grid", data, ("rows", "columns", "n"))
    rows, columns, n = data.get("rows"), data.get("columns"), data.get("n")
    for name, factor in (("grid.rows", rows), ("grid.columns", columns)):
        if factor not in FACTORS:
            raise ValueError(f"{name} is {factor!r}; expected one of {', '.join(FACTORS)}")
    if rows == columns:
        raise ValueError(f"grid rows and columns both vary {rows}; pick two different factors")
    if isinstance(n, bool) or n not in GRID_SIZES:
        raise ValueError(
            f"grid.n is {n!r}; expected {GRID_SIZES.start} to {GRID_SIZES.stop - 1} cells a side"
        )
    return Grid(rows, columns, n)


def cell_seeds(view: View) -> list[dict[str, int]]:
    """The seeds of every video the view shows, row by row: one for a single view, n * n for a grid."""
    if view.grid is None:
        return [view.seeds]
    g = view.grid
    return [
        {**view.seeds, g.rows: view.seeds[g.rows] + i, g.columns: view.seeds[g.columns] + j}
        for i in range(g.n)
        for j in range(g.n)
    ]


def shows_upload(view: View) -> bool:
    """Whether the view's identity is its uploaded person's: a grid that varies identity shows seeds."""
    return view.upload is not None and (
        view.grid is None or "identity" not in (view.grid.rows, view.grid.columns)
    )


def build_codes(
    view: View,
    factor_codes: Callable[[str, int, float], Codes],
    person: Codes | None,
    controls: Mapping[str, Mapping],
) -> Codes:
    """Codes [N] of the view (N = 1, or n * n for a grid, row by row).

    factor_codes(factor, seed, psi): codes of one video whose `factor` is the one to use (what
    gen.sample(1, seed, frames, psi) gives); person: the view's uploaded person's codes (their identity
    is every video's unless the grid varies identity); controls: the generator's settings, by name."""
    videos = []
    for seeds in cell_seeds(view):
        parts = {f: getattr(factor_codes(f, seeds[f], view.psi[f]), f) for f in FACTORS}
        if person is not None and shows_upload(view):
            parts["identity"] = person.identity[:1]
        videos.append(Codes(**parts))
    codes = Codes.cat(videos)
    for factor, method in SETTERS.items():
        values = {n: v for n, v in view.settings.items() if controls[n]["factor"] == factor}
        if values:
            codes = getattr(codes, method)(**values)
    return codes
