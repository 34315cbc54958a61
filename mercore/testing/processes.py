"""A run's fold processes, seen through ``/proc`` (Linux): the signal tests and
``benchmarks/chaos.py`` check with these that a stopped run leaves no worker behind."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (state first, then the parent pid)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (zombies do not count)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat(int(stat.parent.name))
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie has: only its exit status is left)."""
    try:
        return _stat(pid)[0] == "Z"
    except OSError:
        return True


def wait_gone(pids: Iterable[int], until: float) -> bool:
    """Wait until every process in ``pids`` is gone, at most until ``until`` (a ``time.monotonic()``
    time); whether they all went."""
    pids = list(pids)
    while not all(gone(pid) for pid in pids):
        if time.monotonic() >= until:
            return False
        time.sleep(0.05)
    return True
