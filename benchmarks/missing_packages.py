"""One line naming what this Python lacks of setup.py's requirements, with the pip command that installs it.

    python benchmarks/missing_packages.py [--also pytest setuptools]

setup.py's install_requires are read as data (ast), so this runs on any Python before stylevid is
installed there. A package installed outside its range (torch 2.10 for >=2.11) counts as missing
where `packaging` is importable to judge it. Exit status 1 when anything is missing.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import re
import shlex
import sys
from pathlib import Path

SETUP = Path(__file__).resolve().parents[1] / "setup.py"


def install_requires(setup: Path = SETUP) -> list[str]:
    """The requirement strings of setup()'s install_requires keyword in `setup`."""
    for node in ast.walk(ast.parse(setup.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for keyword in node.keywords:
                if keyword.arg == "install_requires":
                    return ast.literal_eval(keyword.value)
    raise ValueError(f"{setup} has no setup(install_requires=[...]) to read; keep the list literal there")


def problem(requirement: str) -> str | None:
    """Why `requirement` is not met here ('not installed', 'torch 2.10.0 installed'), or None if it is."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement).group()
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    try:
        from packaging.requirements import Requirement
    except ImportError:  # the range cannot be judged here; the name is installed
        return None
    if Requirement(requirement).specifier.contains(installed, prereleases=True):
        return None
    return f"{installed} installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--also", nargs="*", default=[], help="more requirements, e.g. pytest")
    args = parser.parse_args(argv)
    wanted = [*install_requires(), *args.also]
    unmet = {r: why for r in wanted if (why := problem(r)) is not None}
    python = f"{sys.executable} (Python {sys.version.split()[0]})"
    if not unmet:
        print(f"packages: {python} has all {len(wanted)} that setup.py and the check need")
        return 0
    listed = ", ".join(r if why == "not installed" else f"{r} ({why})" for r, why in unmet.items())
    command = shlex.join([sys.executable, "-m", "pip", "install", *unmet])
    print(f"packages missing for {python}: {listed}; install them with: {command}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
