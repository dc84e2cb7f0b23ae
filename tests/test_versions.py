"""setup.py's Python and torch ranges are what CI runs: Python 3.11 and 3.12, the lowest torch, the newest."""

import importlib.metadata
import sys
from pathlib import Path

import torch
import torchvision
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# What CI installs: `make test` on Python 3.11 takes the newest release the ranges admit (2.14.1 on
# this machine's disk); .ci/other_python.sh on Python 3.12 pins the lowest in this file.
LOWEST = ROOT / ".ci" / "lowest-torch.txt"
TESTED_PYTHONS = ("3.11", "3.12")
# torchvision 0.N pairs with torch 2.(N-15): 0.26 with 2.11, 0.29 with 2.14.
TORCHVISION_OFFSET = 15


def requirements() -> dict[str, SpecifierSet]:
    """The installed stylevid's requirements (no extras): name -> version range."""
    parsed = [Requirement(r) for r in importlib.metadata.requires("stylevid")]
    return {r.name: r.specifier for r in parsed if r.marker is None}


def lowest_pins() -> dict[str, Version]:
    """The pins of .ci/lowest-torch.txt: name -> version."""
    lines = [line.split("#")[0].strip() for line in LOWEST.read_text().splitlines()]
    pins = {}
    for line in filter(None, lines):
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{LOWEST}: {line!r} must pin one release with =="
        pins[requirement.name] = Version(spec.version)
    return pins


def test_python_range_admits_the_pythons_ci_runs():
    admitted = SpecifierSet(importlib.metadata.metadata("stylevid")["Requires-Python"])
    running = ".".join(map(str, sys.version_info[:3]))
    for version in (*TESTED_PYTHONS, running):
        assert admitted.contains(f"{version}.0" if version.count(".") == 1 else version), (
            f"setup.py's python_requires {admitted} excludes Python {version}, which CI runs"
        )


def test_the_installed_torch_and_torchvision_are_in_range():
    ranges = requirements()
    for name, installed in (("torch", torch.__version__), ("torchvision", torchvision.__version__)):
        public = Version(installed).public  # 2.14.1+cu130 -> 2.14.1
        assert ranges[name].contains(public), f"{name} {installed} is outside setup.py's {ranges[name]}"


def test_the_short_runs_pins_are_the_bottom_of_the_ranges():
    ranges, pins = requirements(), lowest_pins()
    assert set(pins) == {"torch", "torchvision"}, f"{LOWEST} pins {sorted(pins)}"
    for name, pin in pins.items():
        assert ranges[name].contains(pin), f"{LOWEST}: {name}=={pin} is outside setup.py's {ranges[name]}"
        below = Version(f"{pin.major}.{pin.minor - 1}.99")
        assert not ranges[name].contains(below), (
            f"setup.py admits {name} {below}, below {pin}, which no CI run tests; raise the range's floor"
            f" or lower the pin in {LOWEST}"
        )


def test_torchvision_range_pairs_with_the_torch_range():
    ranges = requirements()
    for minor in range(40):
        torch_release, vision_release = f"2.{minor}.0", f"0.{minor + TORCHVISION_OFFSET}.0"
        assert ranges["torch"].contains(torch_release) == ranges["torchvision"].contains(vision_release), (
            f"torch {torch_release} and its torchvision {vision_release} must both be admitted or both not:"
            f" setup.py says torch{ranges['torch']}, torchvision{ranges['torchvision']}"
        )
