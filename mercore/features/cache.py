"""On-disk cache of feature arrays, keyed by extractor, parameters and clip content.

Each entry is an ``.npz`` holding the array and, beside it, the key it was stored under, its shape,
dtype and a SHA-256 of its bytes. An entry that does not match -- another clip's file copied over
it, a damaged or empty file -- is recomputed with a logged warning naming the file, never used.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_save_npz
from ..sample import Sample

log = logging.getLogger(__name__)


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


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def _describe(array: np.ndarray, key: str) -> dict[str, Any]:
    """What an entry records of itself, to be checked against its key when read."""
    return {"key": key, "shape": list(array.shape), "dtype": array.dtype.str, "sha256": _digest(array)}


class FeatureCache:
    """``root/<extractor>/<key[:2]>/<key>.npz``; a missing entry is computed, one that does not
    hold its key's array (see the module docstring) is recomputed with a warning."""

    def __init__(self, root: Path | str | None) -> None:
        self.root = Path(root) if root is not None else None
        self.hits = 0
        self.misses = 0

    def key(self, extractor: str, version: str, params: dict[str, Any], fingerprint: str) -> str:
        return hashlib.sha256(_stable_json([extractor, version, params, fingerprint]).encode()).hexdigest()

    def path(self, extractor: str, key: str) -> Path | None:
        return None if self.root is None else self.root / extractor / key[:2] / f"{key}.npz"

    def load(self, extractor: str, key: str) -> np.ndarray | None:
        """The cached array of ``key``, or None when there is none or the entry fails its check."""
        path = self.path(extractor, key)
        if path is None or not path.exists():
            return None
        try:  # an empty or foreign file fails in np.load, zipfile or the lookups, each its own way
            entry = np.load(path, allow_pickle=False)
            if not isinstance(entry, np.lib.npyio.NpzFile):
                raise TypeError("a bare array, not an entry with its record")
            with entry:
                array, stored = entry["array"], json.loads(str(entry["meta"]))
        except (OSError, ValueError, TypeError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("feature cache file %s is damaged or not a cache entry (%s); recomputing it", path, exc)
            return None
        if stored != _describe(array, key):
            other = isinstance(stored, dict) and stored.get("key") != key
            log.warning("feature cache file %s holds %s; recomputing it", path,
                        "another entry's array" if other else "an array that does not match its record")
            return None
        self.hits += 1
        return array

    def store(self, extractor: str, key: str, array: np.ndarray) -> None:
        self.misses += 1
        path = self.path(extractor, key)
        if path is not None:
            atomic_save_npz(path, array=array, meta=np.array(json.dumps(_describe(array, key))))
