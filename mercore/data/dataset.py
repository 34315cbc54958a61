"""The dataset interface: an adapter turns a corpus on disk into ``Sample``s with task labels."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from ..labels import LabelSet
from ..sample import Sample


class DatasetError(ValueError):
    """A problem with a corpus on disk; the message names the file (and row) at fault."""


@dataclass
class LoadedDataset:
    """What an adapter returns: the samples of one task, its label set and what was skipped."""

    name: str
    task: str
    labels: LabelSet
    samples: list[Sample]
    skipped: list[str] = field(default_factory=list)

    @property
    def subjects(self) -> list[str]:
        return sorted({s.group for s in self.samples})


@dataclass(frozen=True)
class LoadOptions:
    """Options every adapter understands; ``extra`` carries adapter-specific ones (``apex``, ``rule``)."""

    task: str | None = None
    skip_invalid: bool = False
    cache_dir: Path = Path(".mer")
    extra: Mapping[str, Any] = field(default_factory=dict)


class Dataset(abc.ABC):
    """A corpus adapter, registered through ``mer_register_datasets``.

    ``root`` is the folder the user passes as ``--data-root``; adapters of corpora that ship with
    the core (the synthetic one) accept ``None`` and generate their data into the cache.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    tasks: ClassVar[Mapping[str, LabelSet]] = {}
    default_task: ClassVar[str] = "megc3"
    #: "clips" (raw frames) or "flow-release" (precomputed apex + u/v/strain images)
    kind: ClassVar[str] = "clips"
    requires_root: ClassVar[bool] = True
    #: True when the frames are already aligned face crops (the synthetic corpus): a method's
    #: ``features.align: auto`` then aligns nothing. Raw corpora (CASME II, SAMM, SMIC, CAS(ME)^3)
    #: film the whole head and background, so ``auto`` detects and aligns the face there.
    face_aligned: ClassVar[bool] = False

    @abc.abstractmethod
    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        """Read (or generate) the corpus and return the samples of ``options.task``."""

    def label_set(self, task: str | None) -> LabelSet:
        task = task or self.default_task
        if task not in self.tasks:
            raise DatasetError(f"dataset {self.name!r} has no task {task!r}; choose one of {sorted(self.tasks)}")
        return self.tasks[task]
