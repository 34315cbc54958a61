"""``registry.yaml``: the catalogue of known method plugins, beside what is installed."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml


def catalogue_path() -> Path | None:
    """``$MER_REGISTRY``, else the ``registry.yaml`` shipped in the package (in a source checkout a
    link to the repository's own, resolved so that plugin sources are found beside it)."""
    if os.environ.get("MER_REGISTRY"):
        return Path(os.environ["MER_REGISTRY"])
    candidate = (Path(__file__).parent / "registry.yaml").resolve()
    return candidate if candidate.is_file() else None


def read_catalogue(path: Path | None = None) -> dict[str, dict[str, Any]]:
    path = path or catalogue_path()
    if path is None:
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict):
        raise ValueError(f"{path}: `plugins` must be a mapping of name -> entry")
    return plugins


def installed_status() -> dict[str, dict[str, Any]]:
    """Installed plugins by method name (and broken ones by entry-point name) with version and error."""
    from .plugins import BUILTIN, load_registry

    registry = load_registry()
    out: dict[str, dict[str, Any]] = {}
    for method_name, entry in registry.methods.items():
        info = registry.plugins.get(entry.plugin)
        out[method_name] = {"entry_point": entry.plugin, "distribution": info.distribution if info else None,
                            "version": info.version if info else None, "error": None}
    for name, info in registry.plugins.items():
        if info.error and name != BUILTIN:
            out[info.name] = {"entry_point": info.name, "distribution": info.distribution, "version": info.version,
                              "error": info.error}
    return out
