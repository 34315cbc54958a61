"""The core's own datasets and feature extractors, registered through the same hooks as plugins."""
from __future__ import annotations

from typing import Any, Callable

from .hookspecs import hookimpl


@hookimpl
def mer_register_datasets(register: Callable[[Any], None]) -> None:
    from .data.casme2 import Casme2Dataset
    from .data.casme3 import Casme3Dataset
    from .data.flow_release import MegcFlowReleaseDataset
    from .data.megc2019 import Megc2019Dataset
    from .data.samm import SammDataset
    from .data.smic import SmicDataset
    from .data.synthetic import SyntheticDataset

    for dataset in (SyntheticDataset, Casme2Dataset, SammDataset, SmicDataset, Casme3Dataset, Megc2019Dataset,
                    MegcFlowReleaseDataset):
        register(dataset)


@hookimpl
def mer_register_feature_extractors(register: Callable[[Any], None]) -> None:
    from .features.extractors import BUILTIN_EXTRACTORS
    from .features.regions import REGION_EXTRACTORS

    for extractor in (*BUILTIN_EXTRACTORS, *REGION_EXTRACTORS):
        register(extractor)
