"""Stopping a run when asked: SIGINT or SIGTERM noted for the loop to read between steps.

The first signal only sets a flag: the loop finishes its step, saves a snapshot and returns. A second
Ctrl-C raises KeyboardInterrupt at once, wherever the process is; the snapshot writes are atomic and
latest.json is written last, so the run keeps its last complete snapshot.
"""

from __future__ import annotations

import signal
import threading

# 128 + the signal's number is how shells report a process ended by a signal; a stopped run exits so.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """Training stopped on a signal (its snapshot saved, unless `at_once`); `status` is 128 + its number."""

    def __init__(self, message: str, signum: int, at_once: bool = False):
        super().__init__(message)
        self.signum, self.at_once = signum, at_once

    @property
    def status(self) -> int:
        return 128 + self.signum


class StopSignals:
    """While entered (in the main thread), SIGINT and SIGTERM set `signum` instead of ending the process.

    A SIGTERM after the first signal is the same request again (a launcher may forward one after a
    Ctrl-C that already reached the process; torch 2.14's torchrun forwards the SIGINT itself) and
    changes nothing; a second SIGINT stops at once.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._note) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def __call__(self) -> bool:
        """Whether a stop was asked for (a host-side flag: reading it never waits for a device)."""
        return self.signum is not None

    def _note(self, signum: int, frame) -> None:
        # Nothing is printed here: the signal may land inside tqdm's write to stderr.
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt


def ignore_in_worker(worker_id: int) -> None:
    """A data loader worker's start: Ctrl-C is for the training process to act on, not the worker.

    A terminal's Ctrl-C reaches every process of the group; a worker that died of it would fail the
    step that must finish before the snapshot. SIGTERM keeps its default: the loader and Python's exit
    end their workers with it (so a SIGTERM meant for training goes to the training process alone, as
    torchrun, docker and Kubernetes send it).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def signal_name(signum: int) -> str:
    """'SIGINT' for 2, and so on."""
    return signal.Signals(signum).name
