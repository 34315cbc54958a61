"""The core's own datasets and feature extractors, registered through the same hooks as plugins."""
from __future__ import annotations

from typing import Any, Callable

from .hookspecs import hookimpl


@hookimpl
def mer_register_datasets(register: Callable[[Any], None]) -> None:
    from .data.casme2 import Casme2Dataset
    from .data.synthetic import SyntheticDataset

    for dataset in (SyntheticDataset, Casme2Dataset):
        register(dataset)


@hookimpl
def mer_register_feature_extractors(register: Callable[[Any], None]) -> None:
    from .features.extractors import BUILTIN_EXTRACTORS

    for extractor in BUILTIN_EXTRACTORS:
        register(extractor)
