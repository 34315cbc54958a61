"""A run as two typed values built once (by ``mer run``, ``mer tune``, a test or a benchmark) and
handed down to the fold: :class:`RunSpec`, *what* is computed -- it names the run folder -- and
:class:`ExecutionOptions`, *how* and where it is computed, which leaves the predictions alone.

Each value checks its own fields when it is made, so a bad one stops the run in one line that
names the option, before any plugin, data or torch is loaded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .config import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .method import Method

#: where folds run: this process or its fold processes, or Ray tasks (``ExecutionOptions.executor``)
EXECUTORS = ("local", "ray")


def check_workers(workers: int | str) -> int | str:
    """``workers`` if it is a fold-process count >= 0 or ``"auto"``; a ValueError otherwise."""
    if workers != "auto" and (not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers must be a count >= 0 or 'auto', got {workers!r}")
    return workers


def override_items(overrides: Iterable[str] | Mapping[str, Any]) -> tuple[str, ...]:
    """``key=value`` strings (as ``--set`` takes them) from strings or a flat ``{"train.lr": 0.01}`` mapping."""
    if isinstance(overrides, str):
        raise ConfigError(f"overrides {overrides!r}: give a list of key=value strings or a mapping")
    if isinstance(overrides, Mapping):
        return tuple(f"{k}={json.dumps(v)}" for k, v in overrides.items())
    return tuple(overrides)


def check_seeds(seeds: int | Sequence[int]) -> int | tuple[int, ...]:
    """``--seeds``: a count >= 1, or a non-empty list of distinct seeds."""
    if isinstance(seeds, bool) or not isinstance(seeds, (int, Sequence)) or isinstance(seeds, str):
        raise ConfigError(f"--seeds {seeds!r}: give a count such as 3 or a list such as 0,1,2")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: give a count >= 1 or a list such as 0,1,2")
        return seeds
    out = tuple(_seed(s, "--seeds") for s in seeds)
    if not out:
        raise ConfigError("--seeds: the list of seeds is empty; give a count such as 3 or a list such as 0,1,2")
    if len(set(out)) != len(out):
        raise ConfigError(f"--seeds {','.join(map(str, out))}: give distinct seeds")
    return out


def _seed(value: Any, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ConfigError(f"{option} {value!r}: a seed is an integer in [0, 2^32) (NumPy's seeds)")
    return value


@dataclass(frozen=True)
class RunSpec:
    """What to run: the method, the data and the config. Two runs with equal specs (and equal
    execution devices) compute the same predictions and share a run folder.

    ``method`` is a registered method's name (its plugin is loaded on demand) or a ``Method``
    object (a test's method). ``overrides`` are ``key=value`` strings (as ``--set``) or a flat
    ``{"train.lr": 0.01}`` mapping, kept as strings. ``seed`` sets ``run.seed`` after the overrides;
    ``seeds`` (a count from ``run.seed`` on, or a list) asks :func:`mercore.runner.run_seeds` for one
    run per seed, each with ``dataclasses.replace(spec, seed=N, seeds=None)``.
    """

    method: str | Method
    variant: str | None = None
    dataset: str = "synthetic"
    data_root: Path | None = None
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    task: str | None = None
    profile: str | None = None
    config_file: Path | None = None
    overrides: tuple[str, ...] = ()
    subjects: tuple[str, ...] | None = None
    seed: int | None = None
    seeds: int | tuple[int, ...] | None = None
    skip_invalid: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) and not hasattr(self.method, "default_config"):
            raise ConfigError(f"--plugin {self.method!r}: give a method name or a Method")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError(f"--dataset {self.dataset!r}: give a dataset name (see `mer datasets`)")
        set_ = object.__setattr__
        set_(self, "data_root", Path(self.data_root) if self.data_root is not None else None)
        set_(self, "config_file", Path(self.config_file) if self.config_file is not None else None)
        if not isinstance(self.dataset_options, Mapping):
            raise ConfigError(f"-D/--dataset-option {self.dataset_options!r}: give a mapping of option -> value")
        set_(self, "dataset_options", dict(self.dataset_options))
        set_(self, "overrides", override_items(self.overrides))
        if isinstance(self.subjects, str):
            raise ConfigError(f"--subjects {self.subjects!r}: give a list of subjects")
        set_(self, "subjects", tuple(self.subjects) or None if self.subjects is not None else None)
        if self.seed is not None:
            _seed(self.seed, "seed")
        if self.seeds is not None:
            set_(self, "seeds", check_seeds(self.seeds))

    @property
    def method_name(self) -> str:
        return self.method if isinstance(self.method, str) else self.method.name

    def given_overrides(self) -> list[str]:
        """What this run changed of its profile's config, in the CLI's words (``--config PATH``,
        ``--set KEY=VALUE``), for summary.json and the reports: a 3-epoch run must not read as a
        plain quick run. A seed reads as the ``--set run.seed=N`` it amounts to."""
        seed = [f"run.seed={self.seed}"] if self.seed is not None else []
        return (([f"--config {self.config_file}"] if self.config_file else [])
                + [f"--set {item}" for item in (*self.overrides, *seed)])


@dataclass(frozen=True)
class ExecutionOptions:
    """How to run: where the folds compute and what is kept or logged. None of it changes a
    prediction (``device`` aside, which is also the config's ``run.device``).

    ``workers`` > 1 runs folds in that many processes (sequential results up to thread-count
    rounding); ``"auto"`` is one per CPU core (at most 4) on CPU and none on a GPU.
    ``executor="ray"`` ships folds as Ray tasks to a local or remote (``address``) cluster.
    """

    device: str | None = None
    workers: int | str = 0
    executor: str = "local"
    address: str | None = None
    cache_dir: Path = Path(".mer")
    fresh: bool = False
    progress: bool = True
    tracking: bool = True
    tracking_uri: str | None = None
    experiment: str = "mer"

    def __post_init__(self) -> None:
        try:
            check_workers(self.workers)
        except ValueError as exc:
            raise ConfigError(f"--workers: {exc}") from None
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor {self.executor!r}: choose one of {', '.join(EXECUTORS)}")
        if self.device is not None and not isinstance(self.device, str):
            raise ConfigError(f"--device {self.device!r}: give auto, cpu, cuda or cuda:N")
        if not isinstance(self.experiment, str) or not self.experiment:
            raise ConfigError(f"--experiment {self.experiment!r}: give an MLflow experiment name")
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))
