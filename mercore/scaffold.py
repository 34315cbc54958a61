"""``mer new-plugin NAME``: write a working method plugin package to start a new method from.

The templates in ``mercore/templates/plugin`` hold a complete plugin (entry point, ``Method``, a
shallow three-stream CNN on 28x28 u/v/strain flow maps, config with a ``quick`` profile, README,
tests using :mod:`mercore.testing`); ``${name}``-style fields are filled with ``string.Template``.
"""
from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,30}$")


class ScaffoldError(ValueError):
    """An invalid plugin name or an existing target folder."""


def fields(name: str) -> dict[str, str]:
    """Template fields: ``mynet`` -> distribution ``mer-mynet``, package ``mer_mynet``, class ``Mynet``."""
    if not NAME_RE.match(name):
        raise ScaffoldError(f"invalid plugin name {name!r}: use 2-31 lowercase letters, digits or _, "
                            "starting with a letter (it becomes `mer run --plugin NAME` and a Python package)")
    return {"name": name, "distribution": f"mer-{name.replace('_', '-')}", "package": f"mer_{name}",
            "Class": "".join(part.capitalize() for part in name.split("_"))}


def _files(folder: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for item in sorted(folder.iterdir(), key=lambda t: t.name):
        if item.is_dir():
            out += _files(item, (*prefix, item.name))
        elif item.name.endswith(".tmpl"):
            out.append(((*prefix, item.name.removesuffix(".tmpl")), item.read_text()))
    return out


def taken(name: str) -> list[str]:
    """Where ``name`` is already a plugin: the catalogue (registry.yaml) and installed entry points.
    A second plugin of that name would clash with it (only one may register a method name)."""
    from .catalogue import read_catalogue
    from .plugins import entry_points

    found = []
    entry = read_catalogue().get(name)
    if entry is not None:
        found.append(f"registry.yaml lists it ({entry.get('distribution', 'no distribution')})")
    for ep in entry_points():
        if ep.name == name:
            dist = getattr(ep, "dist", None)
            found.append(f"it is installed ({dist.metadata['Name'] if dist is not None else ep.value})")
    return found


def scaffold(name: str, out: Path | str = ".") -> Path:
    """Write the plugin folder ``out/mer-NAME`` and return it."""
    values = fields(name)
    if where := taken(name):
        raise ScaffoldError(f"plugin name {name!r} is taken: {'; '.join(where)}; choose another name (two "
                            "plugins registering one name clash)")
    target = Path(out) / values["distribution"]
    if target.exists() and any(target.iterdir()):
        raise ScaffoldError(f"{target} already exists and is not empty")
    for parts, text in _files(resources.files("mercore").joinpath("templates/plugin")):
        parts = tuple(values["package"] if p == "package" else p for p in parts)
        if parts[-1] == "test_plugin.py":
            parts = (*parts[:-1], f"test_{name}.py")
        path = target.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(values))
    return target
