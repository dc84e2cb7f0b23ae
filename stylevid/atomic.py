"""Files that are either complete or absent: written beside the target, then renamed onto it.

An OS error of such a write comes out as the same OSError subclass with the same errno, its message
naming the target and what to do (the temp file's name alone would not tell a user which file failed).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

_SPACE = "free some disk space, or write somewhere else"
_PERMISSION = "check the folder's permissions, or write somewhere else"
# What to do about the errors a write commonly meets; any other errno gets _DEFAULT_ADVICE.
_ADVICE = {
    errno.ENOSPC: _SPACE,
    errno.EFBIG: "the file system cannot hold a file this large; write to another one",
    errno.EACCES: _PERMISSION,
    errno.EPERM: _PERMISSION,
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.ENOENT: "create the folder first",
}
_DEFAULT_ADVICE = "check the path"


# A write of NAME is staged in ".NAME.<12 hex>.tmp<suffix of NAME>": hidden, beside its target (so the
# rename is atomic), ending in the real suffix (so codecs that go by the name see the format).
_STAGED = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{12}\.tmp(?:\.[^.]+)?")


def temp_path(path: Path) -> Path:
    """A fresh name beside `path` to stage a write of it in (see staged_target)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")


def staged_target(name: str) -> str | None:
    """The file name whose write a temp file named `name` staged (made by temp_path), else None."""
    match = _STAGED.fullmatch(name)
    # Before the real suffix was kept, staged names ended in ".tmp": those count too.
    if match is None or not name.endswith((".tmp", ".tmp" + Path(match["name"]).suffix)):
        return None
    return match["name"]


@contextlib.contextmanager
def replacing(path: Path, temp: Path) -> Iterator[None]:
    """Run a body that writes `temp`, then rename `temp` onto `path`; on any failure remove `temp`."""
    try:
        yield
        os.replace(temp, path)
    except BaseException as exc:
        # A failed clean-up must not hide the error that caused it.
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise


def _naming(exc: OSError, path: Path) -> OSError:
    """`exc` as the same builtin OSError subclass and errno, its message naming `path` and what to do."""
    message = (
        f"cannot write {path}: {exc.strerror or exc}; {_ADVICE.get(exc.errno, _DEFAULT_ADVICE)}"
        " (nothing was written under that name)"
    )
    # Library subclasses (PyAV's) take other constructor arguments; OSError(errno, ...) picks the
    # builtin subclass of that errno, as Python does for its own errors.
    cls = type(exc) if type(exc).__module__ == "builtins" else OSError
    return cls(exc.errno, message) if exc.errno is not None else cls(message)


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temp file beside `path`, fsync it, then rename it onto `path`; returns the path."""
    path = Path(path)
    # safetensors' own save_file is not used: it renames its own temp file (mode 0o600) into place,
    # outside our control of the temp name, its cleanup and the final file mode.
    tmp = temp_path(path)
    with replacing(path, tmp):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            remaining = memoryview(data)
            while remaining:
                remaining = remaining[os.write(fd, remaining) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    if os.name == "posix":
        # Makes the rename itself durable; best effort, since some filesystems refuse fsync on folders.
        try:
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
    return path
