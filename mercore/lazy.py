"""Package attributes imported on first use (PEP 562): ``import mercore`` and a plugin's entry
point (which imports its package) then stay free of torch until a name that needs it is used."""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping


def lazy_exports(package: str, sources: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    ``sources`` maps each exported name to the module that defines it, relative to ``package``
    (``".model"``), with ``":attr"`` appended where the module calls it otherwise. A name is
    imported once, then bound in the package like an eager import.
    """

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = sources[name].partition(":")
        value = getattr(importlib.import_module(module, package), attr or name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *sources})

    return __getattr__, __dir__
