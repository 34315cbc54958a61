"""Fold processes: independent jobs (LOSO folds, outer folds of ``mer tune``) on several cores.

On Linux workers are forked, so what the jobs read (preloaded tensors, the method) is shared,
not copied. Where fork is unsafe or missing (macOS, Windows), or with ``run.start_method:
spawn``, they are started fresh and the work function is pickled to each of them (torch puts
its tensors in shared memory on the way). Each worker dies with its parent, ignores Ctrl-C (the parent decides) and unwinds on
SIGTERM, so a half-written record's temporary file is removed. On any exit from
:func:`run_in_processes` (a Ctrl-C or SIGTERM arrives as KeyboardInterrupt) the workers are
stopped: SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Sequence, TypeVar, cast

import torch

from ..core_settings import START_METHODS
from ..interrupt import unwind_on_sigterm

STOP_GRACE_S = 5.0  # a worker asked to stop (SIGTERM) is killed after this; the issue allows 10 s in all

Job = TypeVar("Job")
Result = TypeVar("Result")

#: the work function of a forking pool; set just before the fork, so workers inherit it unpickled
_WORK: Callable[[Any], Any] | None = None
#: in a worker, its pipe to the parent (for :func:`report_progress`); None in the parent
_PARENT: Connection | None = None


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, shown as the cause of its re-raise."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0])


def start_method(wanted: str = "auto") -> str:
    """``auto``: fork on Linux (fast, shares memory), spawn elsewhere (fork is unsafe on macOS)."""
    if wanted not in START_METHODS:
        raise ValueError(f"run.start_method must be one of {', '.join(START_METHODS)}, got {wanted!r}")
    if wanted == "auto":
        return "fork" if sys.platform.startswith("linux") else "spawn"
    return wanted


def run_in_processes(jobs: Sequence[Job], work: Callable[[Job], Result], finish: Callable[[Result], None], *,
                     workers: int, threads: int, describe: Callable[[Job], str], method: str = "auto",
                     on_progress: Callable[[Job, Any], None] | None = None) -> None:
    """``finish(work(job))`` for every job, the ``work`` in ``workers`` processes of ``threads``
    torch threads each, started by ``method`` (:func:`start_method`); ``finish`` runs here, in
    the order results arrive. Except under fork, ``work`` must pickle (a module-level function,
    or an object of a module-level class). What a job passes to :func:`report_progress` while it
    runs reaches ``on_progress(job, value)`` here.

    A worker's exception is re-raised here with its traceback as the cause; a worker that dies
    is a RuntimeError naming its job (``describe(job)``, e.g. "running fold 3 (sub04)").
    """
    global _WORK
    method = start_method(method)
    ctx = multiprocessing.get_context(method)
    shipped = None if method == "fork" else work
    _WORK = work if method == "fork" else None
    queue = list(jobs)
    busy: dict[Connection, tuple[multiprocessing.process.BaseProcess, Job]] = {}
    processes = []
    try:
        for _ in range(min(workers, len(queue))):
            here, there = ctx.Pipe()
            # every concrete context (fork, spawn, forkserver) has Process; typeshed's BaseContext lacks it
            process = ctx.Process(  # type: ignore[attr-defined]
                target=_worker_main, args=(there, threads, os.getpid(), shipped))
            try:
                process.start()
            except (pickle.PicklingError, TypeError, AttributeError) as exc:
                raise RuntimeError(f"start method {method}: the work cannot be sent to a new process ({exc}); "
                                   "use run.start_method fork (Linux)") from None
            there.close()
            processes.append(process)
            job = queue.pop(0)
            here.send(job)
            busy[here] = (process, job)
        while busy:
            for conn in cast("list[Connection]", wait(list(busy))):  # wait returns some of the objects it is given
                process, job = busy.pop(conn)
                try:
                    kind, payload, remote = conn.recv()
                except EOFError:
                    process.join(STOP_GRACE_S)
                    raise RuntimeError(f"the process {describe(job)} died ({exit_reason(process.exitcode)})") from None
                if kind == "progress":
                    busy[conn] = (process, job)
                    if on_progress is not None:
                        on_progress(job, payload)
                    continue
                if kind == "error":
                    raise payload from RemoteTraceback(remote)
                finish(payload)
                if queue:
                    job = queue.pop(0)
                    conn.send(job)
                    busy[conn] = (process, job)
                else:
                    conn.send(None)  # no more jobs: the worker returns
        for process in processes:
            process.join(STOP_GRACE_S)
    finally:
        _WORK = None
        stop(processes)


def report_progress(value: Any) -> None:
    """From a job running in a worker: tell the parent how far it is (``on_progress`` of
    :func:`run_in_processes`). Does nothing outside a worker."""
    if _PARENT is not None:
        _PARENT.send(("progress", value, None))


def exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}; out of memory?" if -code == signal.SIGKILL \
            else f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def stop(processes: Sequence[multiprocessing.process.BaseProcess]) -> None:
    """End the workers: SIGTERM (they exit through ``finally``), SIGKILL whoever is left."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _die_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when ``parent`` dies (Linux), or poll for it."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGTERM, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):  # not Linux: a thread notices the parent is gone
        import threading

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the request above
        os._exit(1)


def _worker_main(conn: Connection, threads: int, parent: int, shipped: Callable[[Any], Any] | None) -> None:
    """A worker: run the jobs the parent sends until it sends None (or goes away). ``shipped``:
    the work function when it was pickled here (spawn), else the one inherited by fork."""
    global _PARENT
    _die_with_parent(parent)
    _PARENT = conn
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the whole process group; the parent decides
    unwind_on_sigterm()
    torch.set_num_threads(threads)
    work = shipped if shipped is not None else _WORK
    assert work is not None
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            result = work(job)
        except Exception as exc:
            remote = traceback.format_exc()
            try:
                conn.send(("error", exc, remote))
            except Exception:  # an exception that does not pickle: its type and message
                conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}"), remote))
            continue
        conn.send(("done", result, None))
