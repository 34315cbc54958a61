"""A storage failure said in one line: which path, what is wrong, what to do.

A full disk, a read-only cache folder or a ``--cache-dir`` that is a file ended `mer run` in a
traceback. Nothing computed is lost by them -- every file is written atomically
(:mod:`mercore.io`), so finished folds and cached features stay and a rerun reuses them -- and the
line says so.
"""
from __future__ import annotations

import errno

KEPT = "rerun the same command: finished folds and cached features are kept"


def storage_message(exc: OSError, *, folder: str = "--cache-dir (and --tracking-uri)", kept: str = KEPT) -> str:
    """One line for ``exc``, naming its path (``exc.filename``) and the remedy; ``folder`` names
    the options that choose where the command writes, ``kept`` what survives the failure."""
    path = exc.filename if exc.filename is not None else "(a file being written)"
    if exc.errno == errno.ENOSPC:
        return f"no space left on the disk holding {path}: free space there, or give {folder} on another disk; {kept}"
    if exc.errno == errno.EROFS:
        return f"{path} is on a read-only file system: give {folder} on a writable disk; {kept}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {path}: make it readable (an input) or writable ({folder}) for this user; {kept}"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"{path} (or a folder above it) is a file where a folder is needed: give {folder} a folder; {kept}"
    return f"{exc.strerror or exc}: {path}; {kept}"
