"""What a fold's result depends on, so that a stored fold is reused only while all of it holds.

The run folder is named after the method, the config and the set of sample keys (a different
config or subject set is a different run). Inside it, every fold record carries the identity it
was computed under: the config, the versions of mercore and of the plugin distribution, and per
LOSO group (subject) a digest of the labels and one of the inputs, the feature cache's content
fingerprint of each clip (annotation, frame list with sizes and mtimes, bytes of the key frames
and extra files). Each fold trains on every other subject, so any change anywhere invalidates
every fold; the per-group digests exist to say *what* changed ("labels of casme2/sub03").
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Mapping, Sequence

from ..core_settings import INERT_SETTINGS
from ..sample import Sample


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prediction_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-JSON copy of ``config`` without the settings that cannot change a prediction
    (:data:`~mercore.core_settings.INERT_SETTINGS`, marked on their fields)."""
    plain: dict[str, Any] = json.loads(json.dumps(config, default=str))
    for *sections, key in INERT_SETTINGS:
        node = plain
        for section in sections:
            node = node.get(section, {})
        node.pop(key, None)
    return plain


def run_identity(config: Mapping[str, Any], software: Mapping[str, str], samples: Sequence[Sample], task: str,
                 fingerprint: Callable[[Sample], str]) -> dict[str, Any]:
    """The identity every fold of this run is computed under (plain JSON data)."""
    config = prediction_settings(config)
    labels: dict[str, list[list[Any]]] = {}
    inputs: dict[str, list[list[Any]]] = {}
    for s in samples:
        labels.setdefault(s.group, []).append([s.key, s.label(task)])
        inputs.setdefault(s.group, []).append([s.key, fingerprint(s)])
    return {"config": _digest(config), "software": dict(sorted(software.items())),
            "labels": {g: _digest(v) for g, v in sorted(labels.items())},
            "inputs": {g: _digest(v) for g, v in sorted(inputs.items())}}


def _some(names: list[str], most: int = 3) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str | None:
    """Why a fold computed under ``old`` does not hold under ``new`` (None: it holds)."""
    if old == new:
        return None
    if not old:
        return "recorded without an identity (by an older mercore)"
    out = []
    if old.get("config") != new["config"]:
        out.append("config changed")
    before, now = old.get("software", {}), new["software"]
    out += [f"{name} {before.get(name, '(none)')} -> {now.get(name, '(none)')}"
            for name in sorted(set(before) | set(now)) if before.get(name) != now.get(name)]
    for kind, what in (("labels", "labels"), ("inputs", "frames or frame indices")):
        changed = sorted(g for g in set(old.get(kind, {})) | set(new[kind])
                         if old.get(kind, {}).get(g) != new[kind].get(g))
        if changed:
            out.append(f"{what} of {_some(changed)} changed")
    return ", ".join(out) or "identity changed"
