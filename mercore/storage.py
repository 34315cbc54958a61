"""A storage failure said in one line: which path, what is wrong, what to do.

A full disk, a read-only cache folder or a ``--cache-dir`` that is a file ended `mer run` in a
traceback. Nothing computed is lost by them -- every file is written atomically
(:mod:`mercore.io`), so finished folds and cached features stay and a rerun reuses them -- and the
line says so.
"""
from __future__ import annotations

import errno

KEPT = "rerun the same command: finished folds and cached features are kept"


def storage_message(exc: OSError) -> str:
    """One line for ``exc``, naming its path (``exc.filename``) and the remedy."""
    path = exc.filename if exc.filename is not None else "(a file being written)"
    if exc.errno == errno.ENOSPC:
        return f"no space left on the disk holding {path}: free space there, or give --cache-dir on another disk; {KEPT}"
    if exc.errno == errno.EROFS:
        return f"{path} is on a read-only file system: give --cache-dir (and --tracking-uri) on a writable disk; {KEPT}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (f"permission denied: {path}: make it readable (an input) or writable (--cache-dir, --tracking-uri) "
                f"for this user; {KEPT}")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return f"{path} (or a folder above it) is a file where a folder is needed: give --cache-dir a folder; {KEPT}"
    return f"{exc.strerror or exc}: {path}; {KEPT}"
