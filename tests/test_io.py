"""Atomic writes give files the mode the user's umask asks for, as open() would."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from mercore.io import atomic_save_npz, atomic_write_text


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_save_npz(tmp_path / "b.npz", array=np.zeros(2))
        with open(tmp_path / "plain.txt", "w") as f:  # what the user expects: the mode open() gives
            f.write("x")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"a.txt": 0o666 & ~mask, "b.npz": 0o666 & ~mask, "plain.txt": 0o666 & ~mask}
