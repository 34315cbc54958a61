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

Nor can a stop be raised inside a finalizer or a garbage-collection callback (SQLAlchemy runs
some while a store is set up or a fold process starts): Python prints "Exception ignored" and
goes on, and the command ran on. A stop swallowed there is sent again a moment later, to be raised
in the code that runs then (:func:`_resent_if_swallowed`).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterator, TypedDict

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Deferral(TypedDict):
    depth: int  # how many deferred_signals blocks are open
    pending: int | None  # the signal that arrived in one, raised when the outermost ends


#: signal handlers run in the main thread, between bytecodes: process-wide state is the honest scope
_DEFERRAL: _Deferral = {"depth": 0, "pending": None}
#: seconds before a swallowed stop is sent again: sent at once, its handler would run inside the
#: hook (os.kill checks for signals) and be swallowed once more
RESEND_DELAY_S = 0.05


class Interrupted(KeyboardInterrupt):
    """The command was stopped by ``signum``; a shell reports that as exit status 128 + signum."""

    def __init__(self, signum: int, note: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.note = note

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Terminated(SystemExit):
    """A fold process stopped by SIGTERM (:func:`unwind_on_sigterm`): exit status 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


def _resent_if_swallowed(previous: Callable[[Any], None], forget: Callable[[], None]) -> Callable[[Any], None]:
    """A ``sys.unraisablehook``: a stop (:class:`Interrupted`, :class:`Terminated`) that a signal
    handler raised where Python cannot propagate it is sent again as the same signal, from a
    thread after :data:`RESEND_DELAY_S`, once ``forget`` has made its handler take it for a first
    one; anything else goes to ``previous``."""

    def hook(unraisable: Any) -> None:
        stop = unraisable.exc_value
        if not isinstance(stop, (Interrupted, Terminated)):
            previous(unraisable)
            return
        forget()
        resend = threading.Timer(RESEND_DELAY_S, os.kill, (os.getpid(), stop.signum))
        resend.daemon = True
        resend.start()
    return hook


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
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _resent_if_swallowed(previous_hook, fired.clear)
    try:
        yield
    finally:
        _DEFERRAL["pending"] = None
        sys.unraisablehook = previous_hook
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


def unwind_on_sigterm() -> None:
    """For a fold process (for good): SIGTERM raises :class:`Terminated`, so ``finally`` blocks
    run (a half-written record's temporary file is removed), also where it lands in a finalizer."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    signal.signal(signal.SIGTERM, handler)
    sys.unraisablehook = _resent_if_swallowed(sys.unraisablehook, lambda: None)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (another user's counts: never guess it dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
