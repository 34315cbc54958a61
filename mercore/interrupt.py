"""Stopping on Ctrl-C or SIGTERM: first signal cleans up, a second one exits at once.

Python turns SIGINT into KeyboardInterrupt, but SIGTERM (what `kill`, a scheduler or a container
runtime sends) ends the process on the spot: no ``finally`` runs, so fold processes are
orphaned, temporary folders stay and MLflow runs stay RUNNING. Under :func:`stop_on_signals`
both signals raise :class:`Interrupted`, a KeyboardInterrupt, so every cleanup that already
handles Ctrl-C handles SIGTERM too. Whoever is waiting for a stuck cleanup can press Ctrl-C again.

A signal must not cut a database write in half: an interrupted SQLite transaction keeps its lock,
and the cleanup's own writes (runs marked KILLED) then wait on it ("database is locked") for
tens of seconds and fail. Writes run under :func:`deferred_signals`, which holds a first signal
until the write is done.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: signal handlers run in the main thread, between bytecodes: process-wide state is the honest scope
_DEFERRAL = {"depth": 0, "pending": None}


class Interrupted(KeyboardInterrupt):
    """The command was stopped by ``signum``; a shell reports that as exit status 128 + signum."""

    def __init__(self, signum: int, note: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.note = note

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` in the main thread; a
    second one ends the process immediately (``os._exit``; fold processes die with it)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; a caller there owns them
        return
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if fired:
            os.write(2, f"\n{signal.Signals(signum).name} again: exiting at once\n".encode())
            os._exit(128 + signum)
        fired.append(signum)
        if _DEFERRAL["depth"]:
            _DEFERRAL["pending"] = signum  # raised when the write in progress is done
            return
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        _DEFERRAL["pending"] = None
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """A first SIGINT/SIGTERM that arrives in the block raises :class:`Interrupted` when the block
    ends, not inside it; a second one still exits at once. For short writes that must complete."""
    _DEFERRAL["depth"] += 1
    try:
        yield
    finally:
        _DEFERRAL["depth"] -= 1
    signum = _DEFERRAL["pending"]
    if signum is not None and not _DEFERRAL["depth"]:
        _DEFERRAL["pending"] = None
        raise Interrupted(signum)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (another user's counts: never guess it dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
