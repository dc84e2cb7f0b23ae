"""Tests for stylevid.atomic: a write is complete or absent, and its OS errors name the file."""

import errno
import os
from pathlib import Path

import pytest

from stylevid.atomic import write_atomically


def _disk_full_halfway(monkeypatch):
    """Let os.write put half its bytes on disk, then fail as a full disk does."""
    real_write = os.write

    def write(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", write)


def test_a_full_disk_leaves_nothing_half_written_and_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "index.json"
    _disk_full_halfway(monkeypatch)
    with pytest.raises(OSError) as info:
        write_atomically(path, b"x" * 10_000)
    assert info.value.errno == errno.ENOSPC and type(info.value) is OSError
    message = str(info.value)
    assert str(path) in message and "No space left" in message and "free" in message
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = write_atomically(tmp_path / "index.json", b"old")
    _disk_full_halfway(monkeypatch)
    with pytest.raises(OSError, match="index.json"):
        write_atomically(path, b"new" * 1000)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_an_os_error_keeps_its_class_and_errno(tmp_path):
    path = tmp_path / "missing" / "index.json"
    with pytest.raises(FileNotFoundError) as info:
        write_atomically(path, b"x")
    assert info.value.errno == errno.ENOENT and str(path) in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_an_interrupt_is_not_wrapped(tmp_path, monkeypatch):
    def interrupt(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "x.bin", b"x")
    assert list(tmp_path.iterdir()) == []


def test_staged_names_lead_back_to_their_target_and_nothing_else_does(tmp_path):
    from stylevid.atomic import staged_target, temp_path

    for name in ("latest.json", "snapshot-000000004-samples.mp4", "a.b.c"):
        temp = temp_path(tmp_path / name)
        assert temp.parent == tmp_path and temp.name.startswith(".") and temp.suffix == Path(name).suffix
        assert staged_target(temp.name) == name
    assert staged_target(".latest.json.0123456789ab.tmp") == "latest.json"  # before the suffix was kept
    for other in (
        ".x.json.0123456789AB.tmp",
        ".x.json.0123456789ab.tmp.bak",
        ".hidden.tmp",
        "x.json",
        ".x.json.tmp",
    ):
        assert staged_target(other) is None, other
