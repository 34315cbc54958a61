"""``mer plugins install NAME``: pip-install a plugin listed in ``registry.yaml``.

A plugin whose ``source`` folder exists next to the registry (this repository) is installed
editable from it; otherwise its ``distribution`` comes from the package index. pip runs with the
interpreter running ``mer``, so the plugin lands in the same environment.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from .catalogue import catalogue_path, read_catalogue


class InstallError(ValueError):
    """A name not in the registry, or an entry that says nothing installable."""


def pip_command(name: str, catalogue: dict[str, dict[str, Any]] | None = None,
                registry_file: Path | None = None) -> list[str]:
    """The pip command that installs plugin ``name``."""
    registry_file = registry_file or catalogue_path()
    catalogue = read_catalogue(registry_file) if catalogue is None else catalogue
    if name not in catalogue:
        valid = ", ".join(sorted(catalogue)) or "(registry.yaml lists none)"
        raise InstallError(f"unknown plugin {name!r}: not in registry.yaml; choose one of: {valid}")
    entry = catalogue[name]
    pip = [sys.executable, "-m", "pip", "install"]
    source = entry.get("source")
    if source and registry_file is not None:
        folder = (Path(registry_file).parent / source).resolve()
        if (folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file():
            return [*pip, "-e", str(folder)]
    if entry.get("status") == "planned":
        raise InstallError(f"plugin {name!r} is planned (status in registry.yaml): it has no source folder here "
                           "and is not published yet")
    if not entry.get("distribution"):
        raise InstallError(f"registry entry {name!r} names neither an existing source folder nor a distribution")
    return [*pip, entry["distribution"]]


def install(name: str, *, dry_run: bool = False) -> list[str]:
    """Run (or with ``dry_run`` only return) the pip command for ``name``; pip's errors propagate."""
    command = pip_command(name)
    if not dry_run:
        subprocess.run(command, check=True)
    return command
