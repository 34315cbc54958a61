"""On-disk cache of feature arrays, keyed by extractor, parameters and clip content."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_save_npy
from ..sample import Sample


def _stable_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def sample_fingerprint(sample: Sample) -> str:
    """Hash of what a clip's features can depend on: annotation, frame files and extra files.

    Frame files enter by size and modification time (cheap for long clips); the onset, apex and
    offset frames and all extra files also by content, so a re-written key frame is noticed.
    """
    h = hashlib.sha256()
    h.update(_stable_json([sample.dataset, sample.subject, sample.clip, sample.onset, sample.apex,
                           sample.offset, [str(p) for p in sample.frames]]).encode())
    key_frames = {i for i in (sample.onset, sample.apex, sample.offset) if 0 <= i < len(sample.frames)}
    for i, path in enumerate(sample.frames):
        st = os.stat(path) if os.path.exists(path) else None
        h.update(f"{i}:{st.st_size if st else -1}:{st.st_mtime_ns if st else -1}".encode())
        if i in key_frames and st is not None:
            h.update(Path(path).read_bytes())
    for name in sorted(sample.extras):
        path = Path(sample.extras[name])
        h.update(name.encode())
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()


class FeatureCache:
    """``root/<extractor>/<key[:2]>/<key>.npy``; a missing or unreadable entry is recomputed."""

    def __init__(self, root: Path | str | None) -> None:
        self.root = Path(root) if root is not None else None
        self.hits = 0
        self.misses = 0

    def key(self, extractor: str, version: str, params: dict[str, Any], fingerprint: str) -> str:
        return hashlib.sha256(_stable_json([extractor, version, params, fingerprint]).encode()).hexdigest()

    def path(self, extractor: str, key: str) -> Path | None:
        return None if self.root is None else self.root / extractor / key[:2] / f"{key}.npy"

    def load(self, extractor: str, key: str) -> np.ndarray | None:
        path = self.path(extractor, key)
        if path is None or not path.exists():
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # truncated by a crash before atomic writes existed, or disk trouble
        self.hits += 1
        return array

    def store(self, extractor: str, key: str, array: np.ndarray) -> None:
        self.misses += 1
        path = self.path(extractor, key)
        if path is not None:
            atomic_save_npy(path, array)
