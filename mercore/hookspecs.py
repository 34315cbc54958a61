"""The hooks a mer plugin implements. Each receives a ``register`` callback, so one plugin
can contribute several items and the core records which plugin each came from."""
from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("mer")
hookimpl = pluggy.HookimplMarker("mer")


@hookspec
def mer_register_methods(register: Callable[[Any], None]) -> None:
    """Register ``Method`` subclasses (or instances): ``register(MyMethod)``."""


@hookspec
def mer_register_datasets(register: Callable[[Any], None]) -> None:
    """Register ``Dataset`` subclasses (or instances): ``register(MyCorpus)``."""


@hookspec
def mer_register_feature_extractors(register: Callable[[Any], None]) -> None:
    """Register ``FeatureExtractor`` subclasses: ``register(MyExtractor)``."""


@hookspec
def mer_register_commands(cli: Any) -> None:
    """Add click commands to the ``mer`` command group."""
