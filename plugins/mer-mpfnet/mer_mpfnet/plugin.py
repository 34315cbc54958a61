"""Entry point of the ``mpfnet`` plugin (group ``mer``)."""
from __future__ import annotations

from typing import Any, Callable

from mercore import hookimpl


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    """Register MPFNet (variants ``c`` cascade, default, and ``p`` parallel)."""
    from .method import MPFNet

    register(MPFNet)
