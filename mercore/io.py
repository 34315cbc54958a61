"""Atomic file writes: a temporary file in the target folder, then a rename.

Readers (a resumed run, a second process) never see half a file; a crash leaves at most a
stray ``.tmp`` file that nothing reads. Files get the mode ``open()`` would give them (0666 less
the umask), not ``mkstemp``'s 0600: a shared feature cache or an MLflow UI run by another user
must be able to read them.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly process-wide)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; an OSError names ``path`` (a failed write, e.g. a
    full disk, names no file of itself) and leaves any earlier ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~umask())
            f.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def atomic_write_text(path: Path | str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_npz(path: Path | str, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    # mypy matches **arrays against savez's keyword allow_pickle: bool; the keys are array names
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(path, buf.getvalue())


def atomic_torch_save(path: Path | str, obj: Any) -> None:
    import torch  # here, so that `mer synth` and the data adapters do not load torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path | str) -> Any:
    """Load a checkpoint safely: tensors and plain containers only, never arbitrary pickles."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
