"""The README and docs/*.md as tests: each Python block runs, each command parses, each file named exists.

A renamed option, command, make target or file breaks a test here instead of a reader's first try.
A block may carry directions for its test in an HTML comment on the line before it (invisible on
the rendered page): `<!-- test: replace "A" "B"; replace "C" "D" -->` runs it with smaller sizes,
`<!-- test: run -->` runs a shell block's commands for real (the README's quick start).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from stylevid import cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- test: (?P<directions>.*?) -->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)
REPLACE = re.compile(r'replace "(?P<old>[^"]*)" "(?P<new>[^"]*)"')
# Paths into the repository named in backticks: `benchmarks/train.py`, `tests/test_real_footage.py`.
PATH = re.compile(r"`((?:benchmarks|tests|training|metrics|stylevid|custom_ops|docs|\.ci)/[\w./-]*\w)`")
# Shell words that are not commands of ours: they need a look only that they exist.
OTHER_COMMANDS = {"source", "tensorboard", "torchrun", "git", "cd", "pip"}


@dataclass
class Block:
    page: str
    line: int
    lang: str
    body: str
    directions: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _blocks(lang: str) -> list[Block]:
    out = []
    for page in PAGES:
        text = page.read_text()
        for m in BLOCK.finditer(text):
            if m["lang"] == lang:
                line = text.count("\n", 0, m.start("body"))
                out.append(
                    Block(page.relative_to(ROOT).as_posix(), line, lang, m["body"], m["directions"] or "")
                )
    return out


def _commands(block: Block) -> list[list[str]]:
    """The block's commands as argv lists: continuations joined, comments and env assignments dropped."""
    text = block.body.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
            words = words[1:]
        if words:
            commands.append(words)
    return commands


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return {m[1] for m in re.finditer(r"^([\w.-]+(?:/[\w.-]+)*):", text, re.M)}


PYTHON_BLOCKS = _blocks("python")
SHELL_BLOCKS = _blocks("bash")


def test_the_pages_hold_blocks_to_test():
    # The extraction itself can fail: a README without a Python block or a command is a broken test.
    assert any(b.page == "README.md" for b in PYTHON_BLOCKS)
    assert sum(len(_commands(b)) for b in SHELL_BLOCKS) >= 20


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.id for b in PYTHON_BLOCKS])
def test_python_block_runs_on_its_own(block, tmp_path):
    code = block.body
    for m in REPLACE.finditer(block.directions):
        assert m["old"] in code, f"{block.id}: the direction replaces {m['old']!r}, which the block lacks"
        code = code.replace(m["old"], m["new"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STYLEVID_OPS": "ref"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{block.id} failed:\n{code}\n--- stderr ---\n{result.stderr[-3000:]}"


def _check_command(words: list[str], block: Block, targets: set[str]) -> None:
    where = f"{block.id}: `{shlex.join(words)}`"
    program = Path(words[0]).name
    if program == "stylevid" or words[:3] == ["python", "-m", "stylevid"]:
        argv = words[1:] if program == "stylevid" else words[3:]
        try:
            cli.parser().parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{where} is refused by stylevid's own parser (exit {exc.code})")
    elif program == "make":
        missing = [t for t in words[1:] if "=" not in t and t not in targets]
        assert not missing, f"{where}: no make target {missing}"
    elif program in ("python", "python3") and words[1:2] != ["-c"]:
        script = words[2] if words[1] == "-m" else words[1]
        if words[1] == "-m":
            __import__(script)
        else:
            assert (ROOT / script).is_file(), f"{where}: {script} does not exist"
    elif program in ("python", "python3", "bash"):
        pass  # run by the tests that run their block, or a script checked below
    else:
        assert program in OTHER_COMMANDS, f"{where}: {program} is neither ours nor a known command"


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.id for b in SHELL_BLOCKS])
def test_every_command_shown_parses(block):
    targets = _makefile_targets()
    for words in _commands(block):
        _check_command(words, block, targets)


RUN_BLOCKS = [b for b in SHELL_BLOCKS if "run" in b.directions.split(";")[0].split()]


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.id for b in RUN_BLOCKS])
def test_the_quick_start_runs_as_written(block, tmp_path, monkeypatch):
    """Its stylevid and python -c lines run for real (make and source set up what the test already has)."""
    monkeypatch.chdir(tmp_path)
    ran = 0
    for words in _commands(block):
        if Path(words[0]).name == "stylevid":
            status = cli.main(words[1:])
            assert status == 0, f"{block.id}: `{shlex.join(words)}` exited {status}"
        elif words[:2] == ["python", "-c"]:
            subprocess.run([sys.executable, *words[1:]], check=True, timeout=300)
        else:
            continue
        ran += 1
    assert ran >= 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[:4] == [f"seed{i:04d}.mp4" for i in range(4)]
    assert (tmp_path / "codes.safetensors").is_file() and (tmp_path / "codes.png").is_file()


def test_every_file_the_pages_name_exists():
    missing = []
    for page in PAGES:
        for m in PATH.finditer(page.read_text()):
            path = m[1].rstrip(".")
            if not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "named but not in the repository:\n" + "\n".join(missing)


def test_every_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    unlinked = [p.name for p in PAGES[1:] if f"](docs/{p.name}" not in readme]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"
