"""One thread that runs the studio's torch work off the request threads, where the latest request wins.

A job is submitted under a key. A job still waiting when another of the same key arrives is dropped
(its caller gets Superseded): a slider dragged fast renders the frame it stopped at, not every frame it
passed. Jobs of different keys (another page's view, an upload, an export) wait their turn in order.
One thread, because the generator and the encoder are not shared between threads, and torch already
uses every core inside one forward pass.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any


class Superseded(Exception):
    """The job was replaced by a newer job of the same key before it started."""


class LatestWins:
    """A thread running jobs one at a time; the newest job of a key replaces a waiting one."""

    def __init__(self, name: str = "studio-worker"):
        self._waiting: OrderedDict[Hashable, tuple[Callable[[], Any], Future]] = OrderedDict()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, key: Hashable, job: Callable[[], Any]) -> Future:
        """Queue job() under `key`; a job of that key still waiting is dropped (its future: Superseded)."""
        future: Future = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the studio's worker has stopped")
            dropped = self._waiting.pop(key, None)
            self._waiting[key] = (job, future)
            self._wake.notify()
        if dropped is not None:
            dropped[1].set_exception(Superseded(f"a newer request of {key!r} replaced this one"))
        return future

    def run(self, key: Hashable, job: Callable[[], Any], timeout: float | None = None) -> Any:
        """submit(key, job) and wait for its result (Superseded if a newer job of the key replaced it)."""
        return self.submit(key, job).result(timeout)

    def close(self) -> None:
        """Stop after the running job; waiting jobs are dropped."""
        with self._wake:
            self._closed = True
            waiting = list(self._waiting.values())
            self._waiting.clear()
            self._wake.notify()
        for _, future in waiting:
            future.set_exception(Superseded("the studio is shutting down"))
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                _, (job, future) = self._waiting.popitem(last=False)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as exc:  # handed to the request that asked, which reports it
                future.set_exception(exc)
