"""The core's config sections (``run``, ``data``, ``validation``, ``evaluation``) as typed settings.

Their keys and defaults are written once, in ``mercore/configs/core.yaml``; these classes say what
each key may hold, and :func:`validate_config` checks a resolved config against them (and the
trainer keys every method shares) before any data are read, so a bad value stops a run in one
line naming the key. The core then reads the typed values (``CoreSettings.of(config).run.seed``),
never a key with a default written in code.

Whether a key belongs to a run's identity is marked on its field: :func:`inert` marks a setting
that cannot change a prediction (how the feature cache is filled, how intervals are drawn), so
neither the run folder's name nor a fold's identity depends on it (:data:`INERT_SETTINGS`).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
import typing
from typing import Annotated, Any, Literal

from .config import OPTIMIZERS, SCHEDULERS, ConfigError
from .evaluation.settings import EvaluationSettings
from .settings import AtLeast, Below, Between, Matches, NonNegativeFloat, NonNegativeInt, Settings, inert, is_inert

Seed = Annotated[int, Between(0, 2**32 - 1)]  # NumPy's generators take no negative seed
StartMethod = Literal["auto", "fork", "spawn", "forkserver"]  # auto: fork on Linux, spawn elsewhere
START_METHODS: tuple[str, ...] = typing.get_args(StartMethod)


@dataclass(frozen=True, kw_only=True)
class RunSettings(Settings):
    """``run``: the seed and how the folds are computed."""

    section = "run"

    seed: Seed  # fold i uses seed + i
    device: Annotated[str, Matches(r"auto|cpu|mps|cuda(:\d+)?", "auto, cpu, mps, cuda or cuda:N")]
    precision: Literal["auto", "fp32", "bf16", "fp16", "off", "none"]
    checkpoints: bool
    feature_workers: NonNegativeInt = inert()  # how the cache is filled, not what it holds
    start_method: StartMethod = inert()  # how fold processes start
    channels_last: bool
    compile: bool
    ray_cpus: NonNegativeFloat
    ray_gpus: NonNegativeFloat
    system_metrics: bool | Literal["auto", "true", "false", "on", "off"]


@dataclass(frozen=True, kw_only=True)
class DataSettings(Settings):
    """``data``: per-fold standardisation and the dataset adapter's options."""

    section = "data"

    normalize: bool
    options: Mapping[str, Any]  # the adapter checks them (Dataset.check_options)


@dataclass(frozen=True, kw_only=True)
class ValidationSettings(Settings):
    """``validation``: the training subjects each fold holds out for early stopping."""

    section = "validation"

    subjects: Annotated[float, AtLeast(0), Below(1)]


@dataclass(frozen=True, kw_only=True)
class CoreSettings(Settings):
    """The four core sections of a resolved config."""

    run: RunSettings
    data: DataSettings
    validation: ValidationSettings
    evaluation: EvaluationSettings

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> CoreSettings:
        """The core sections of a resolved ``config`` (a method's own sections are its to check)."""
        return cls(run=RunSettings.from_config(config.get("run")), data=DataSettings.from_config(config.get("data")),
                   validation=ValidationSettings.from_config(config.get("validation")),
                   evaluation=EvaluationSettings.from_config(config.get("evaluation")))


def _inert_keys(cls: type[Settings], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    hints = cls.hints()
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if is_inert(field):
            yield (*path, field.name)
        elif isinstance(hints[field.name], type) and issubclass(hints[field.name], Settings):
            yield from _inert_keys(hints[field.name], (*path, field.name))


#: ``(section, key)`` of every setting marked :func:`inert`: left out of the run's identity
INERT_SETTINGS: tuple[tuple[str, ...], ...] = tuple(_inert_keys(CoreSettings))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scheduler_ok(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, Mapping) or v.get("name", "none") not in (None, *SCHEDULERS):
        return False
    step, gamma = v.get("step_size", 1), v.get("gamma", 0.1)
    return _is_int(step) and step >= 1 and _is_number(gamma) and 0 < gamma < math.inf


#: key name (in any section a method adds) -> (test, what is allowed). Every trainer of the core
#: and of the plugins reads these names with these meanings (``SupervisedTrainer.from_config`` ...),
#: so a bad value is refused before the trainer is built, at the start of the run.
NAMED_RULES: dict[str, tuple[Any, str]] = {
    "epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "lr": (lambda v: _is_number(v) and v > 0, "a number > 0 (e.g. 1e-3)"),
    "optimizer": (lambda v: isinstance(v, str) and v.lower() in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "scheduler": (_scheduler_ok, f"a mapping whose name is one of {', '.join(SCHEDULERS)}, e.g. {{name: step}}, "
                                 f"with step_size an integer >= 1 and gamma a number > 0"),
}


def _method_nodes(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every value outside the core sections; extractor ``params``
    are the extractor's to check, ``meta`` is the core's own record."""
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if path == "meta" or path in CoreSettings.keys():
            continue
        yield path, value
        if isinstance(value, Mapping) and key != "params":
            yield from _method_nodes(value, path)


def validate_config(config: Mapping[str, Any]) -> CoreSettings:
    """The core sections of ``config``, typed; a ConfigError naming the first key whose value the
    run could not use (a core key, or a trainer key of the method's sections).

    Runs before any data are read or features computed, so ``--set train.epochs=0`` or
    ``optimizer=nosuch`` stop at once instead of crashing a fold (or publishing the metrics of an
    untrained model) minutes later.
    """
    core = CoreSettings.of(config)
    for path, value in _method_nodes(config):
        rule = NAMED_RULES.get(path.rpartition(".")[2])
        if rule is not None and not rule[0](value):
            raise ConfigError(f"config key {path!r}: {value!r} is not allowed; expected {rule[1]}")
    return core


__all__ = ["CoreSettings", "DataSettings", "INERT_SETTINGS", "NAMED_RULES", "RunSettings", "START_METHODS",
           "ValidationSettings", "validate_config"]
