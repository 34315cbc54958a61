"""The dataset interface: an adapter turns a corpus on disk into ``Sample``s with task labels."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, TypeVar

from ..config import ConfigError
from ..labels import LabelSet
from ..sample import Sample

T = TypeVar("T")


class DatasetError(ValueError):
    """A problem with a corpus on disk; the message names the file (and row) at fault."""


class UnknownTaskError(DatasetError, ConfigError):
    """``--task`` names no task of the dataset: bad input, as a bad option is (exit 2 in the CLI)."""


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
    #: the ``-D`` options the adapter reads (``LoadOptions.extra``): `mer run` refuses any other
    #: before reading anything, since it would only change the run folder. None: not declared,
    #: every option is passed on unchecked.
    options: ClassVar[tuple[str, ...] | None] = None

    @abc.abstractmethod
    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        """Read (or generate) the corpus and return the samples of ``options.task``."""

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse a bad value among the ``-D`` options ``options`` with a ConfigError naming it, before
        anything is read or generated (`mer run` calls this first). By default the adapter checks
        its options only when it reads them."""

    def label_set(self, task: str | None) -> LabelSet:
        return self.tasks[choose_task(self.name, self.tasks, task, self.default_task)]

    def need_root(self, root: Path | None, folder: str) -> Path:
        """``root``, or (when the user gave none) a DatasetError saying which ``folder`` to pass."""
        if root is None:
            raise DatasetError(f"dataset {self.name!r} needs a data root ({folder})")
        return root


# The steps every corpus loader shares, in one place so that a root, a task and a bad row read the
# same way (and name the same things) whichever adapter meets them.

def data_root(root: Path | str) -> Path:
    """``root`` with ``~`` expanded, checked to be a folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data root {root} is not a folder")
    return root


def choose_task(dataset: str, tasks: Mapping[str, LabelSet], task: str | None, default: str = "megc3") -> str:
    """``task`` (``default`` when None), checked to be one of ``tasks``."""
    task = task or default
    if task not in tasks:
        raise UnknownTaskError(f"dataset {dataset!r} has no task {task!r}; choose one of {sorted(tasks)}")
    return task


def skip_or_raise(message: str, options: LoadOptions, skipped: list[str], what: str = "such rows") -> None:
    """A fault of the corpus (``message`` names the file and row, or the folder): listed in
    ``skipped`` under ``--skip-invalid``, else a DatasetError that points to that option."""
    if not options.skip_invalid:
        raise DatasetError(f"{message} (pass --skip-invalid to leave {what} out)") from None
    skipped.append(message)


def collect_samples(items: Iterable[T], read: Callable[[T], Sample | None], where: Callable[[T], str],
                    options: LoadOptions, skipped: list[str], *, what: str = "such rows",
                    errors: tuple[type[Exception], ...] = (ValueError, KeyError, OSError)) -> list[Sample]:
    """The samples ``read`` makes of ``items`` (annotation rows, clip folders), in order.

    ``read`` returns None for an item that is not part of the task (left out, not an error) and
    raises one of ``errors`` for a bad one, which goes to :func:`skip_or_raise` as
    ``"<where(item)>: <error>"``.
    """
    samples = []
    for item in items:
        try:
            sample = read(item)
        except errors as exc:
            skip_or_raise(f"{where(item)}: {exc}", options, skipped, what)
            continue
        if sample is not None:
            samples.append(sample)
    return samples
