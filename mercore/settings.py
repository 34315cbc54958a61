"""Typed config sections: a dataclass per section, built from YAML and checked field by field.

A model's or trainer's settings are a dataclass deriving from :class:`Settings`. Its fields are
the section's keys, typed by their annotations; :meth:`Settings.from_config` refuses a key the
class does not declare and a key the section lacks, and checks every value against its field's
type (``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``X | None``, ``tuple[X, ...]``,
``Sequence[X]``, ``Mapping[str, X]``, a nested ``Settings``) and its range (``Annotated[int,
AtLeast(1)]``). The message names the section, the key, the value and what is allowed, so a bad
value stops a run before any work.

The YAML is the only source of defaults: config fields carry none. A plugin's section comes
complete from its ``config.yaml``; the core's trainers read theirs from
``mercore/configs/trainers.yaml`` beneath what the method sets (:attr:`Settings.defaults_key`).
Fields the code sets rather than the config (callbacks, a stage's name) are declared with
:func:`runtime` and are not keys.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from .config import ConfigError, deep_merge, trainer_defaults

S = TypeVar("S", bound="Settings")
_RUNTIME = "mer_runtime"
_INERT = "mer_inert"


def runtime(default: Any = None, *, factory: Callable[[], Any] | None = None) -> Any:
    """A field set by code (a callback, a stage name), not read from the config; ``factory``
    makes a mutable default."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={_RUNTIME: True})
    return dataclasses.field(default=default, metadata={_RUNTIME: True})


def inert() -> Any:
    """A config key that cannot change a prediction (how a cache is filled, how an interval is
    drawn): left out of the run folder's name and of a fold's identity, so changing it reuses the
    finished folds (``mercore.core_settings.INERT_SETTINGS``)."""
    return dataclasses.field(metadata={_INERT: True})


def is_inert(field: dataclasses.Field[Any]) -> bool:
    """Whether ``field`` was declared with :func:`inert`."""
    return bool(field.metadata.get(_INERT))


@dataclasses.dataclass(frozen=True)
class AtLeast:
    """Range constraint for ``Annotated``: ``value >= bound``."""

    bound: float

    def __call__(self, value: Any) -> bool:
        return value >= self.bound

    def __str__(self) -> str:
        return f">= {self.bound}"


@dataclasses.dataclass(frozen=True)
class Above:
    """Range constraint for ``Annotated``: ``value > bound``."""

    bound: float

    def __call__(self, value: Any) -> bool:
        return value > self.bound

    def __str__(self) -> str:
        return f"> {self.bound}"


@dataclasses.dataclass(frozen=True)
class Between:
    """Range constraint for ``Annotated``: ``low <= value <= high``."""

    low: float
    high: float

    def __call__(self, value: Any) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"in [{self.low}, {self.high}]"


@dataclasses.dataclass(frozen=True)
class Below:
    """Range constraint for ``Annotated``: ``value < bound``."""

    bound: float

    def __call__(self, value: Any) -> bool:
        return value < self.bound

    def __str__(self) -> str:
        return f"< {self.bound}"


@dataclasses.dataclass(frozen=True)
class Matches:
    """Constraint for ``Annotated[str, ...]``: the whole string matches ``pattern``; ``described``
    says what that allows, for the message."""

    pattern: str
    described: str

    def __call__(self, value: Any) -> bool:
        return re.fullmatch(self.pattern, value) is not None

    def __str__(self) -> str:
        return f"of the form {self.described}"


PositiveInt = typing.Annotated[int, AtLeast(1)]
NonNegativeInt = typing.Annotated[int, AtLeast(0)]
PositiveFloat = typing.Annotated[float, Above(0)]
NonNegativeFloat = typing.Annotated[float, AtLeast(0)]
Probability = typing.Annotated[float, Between(0, 1)]


class _Mismatch(Exception):
    """A value that does not fit a type; the message says what was expected."""


def _name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return "null"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if origin is typing.Annotated:
        base, *checks = typing.get_args(hint)
        return f"{_name(base)} {' and '.join(map(str, checks))}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_name(a) for a in typing.get_args(hint))
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        args: Sequence[Any] = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"a list of {_name(args[0])}" if args else "a list"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        args = typing.get_args(hint)
        return f"a mapping to {_name(args[1])}" if args and args[1] is not Any else "a mapping"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """``value`` checked against ``hint`` (floats accept integers; tuples are made from lists)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, TypeVar):
        return value
    if origin is typing.Annotated:
        try:
            value = _coerce(value, args[0], path)
        except _Mismatch:
            raise _Mismatch(_name(hint)) from None
        for check in args[1:]:
            if not check(value):
                raise _Mismatch(_name(hint))
        return value
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            try:
                return _coerce(value, arm, path)
            except _Mismatch:
                continue
        raise _Mismatch(_name(hint))
    if origin is typing.Literal:
        if any(a == value and type(a) is type(value) for a in args):
            return value
        raise _Mismatch(_name(hint))
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch("null")
    if isinstance(hint, type) and issubclass(hint, Settings):
        if not isinstance(value, Mapping):
            raise _Mismatch(f"a section with keys {', '.join(hint.keys())}")
        return hint.from_config(value, where=path)
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise _Mismatch(_name(hint))
        item = next((a for a in args if a is not Ellipsis), Any)
        items = [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        if tuple in (origin, hint):
            return tuple(items)
        if list in (origin, hint):
            return list(items)
        # another Sequence class: rebuilt as the value's own (mypy cannot know its constructor)
        return type(value)(items)  # type: ignore[call-arg]
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Mismatch(_name(hint))
        item = args[1] if args else Any
        return {k: _coerce(v, item, f"{path}.{k}") for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:  # .inf and .nan are YAML numbers but no setting means them
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value  # a type the config cannot express (a callable): the code's to check
    raise _Mismatch(_name(hint))


class Settings:
    """Base of a dataclass whose fields are one config section's keys (see the module docstring).

    ``section`` names the section in messages (``model``, ``train``); ``defaults_key`` names the
    block of ``mercore/configs/trainers.yaml`` merged beneath the given section (core trainers
    only: a plugin's YAML holds its own defaults).
    """

    section: ClassVar[str] = "config"
    defaults_key: ClassVar[str | None] = None

    @classmethod
    def keys(cls) -> list[str]:
        """The config keys of this section (every field that is not :func:`runtime`)."""
        return [f.name for f in dataclasses.fields(cls) if not f.metadata.get(_RUNTIME)]  # type: ignore[arg-type]

    @classmethod
    def hints(cls) -> dict[str, Any]:
        """Each field's annotation, evaluated (constraints kept)."""
        return typing.get_type_hints(cls, include_extras=True)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The core's defaults of this section (empty unless ``defaults_key`` is set)."""
        return trainer_defaults(cls.defaults_key) if cls.defaults_key else {}

    @classmethod
    def from_config(cls: type[S], cfg: Mapping[str, Any] | None, *, where: str | None = None, **runtime: Any) -> S:
        """Build from a config section (``where`` names it in messages; ``""``: the top level, whose
        keys are sections); ``runtime`` sets the :func:`runtime` fields. Unknown, missing and
        mistyped keys are ConfigErrors."""
        where = cls.section if where is None else where
        if cfg is not None and not isinstance(cfg, Mapping):
            raise ConfigError(f"config section {where!r} must be a mapping, got {cfg!r}")
        values = deep_merge(cls.defaults(), cfg or {})
        keys = cls.keys()
        unknown = sorted(set(values) - set(keys))
        if unknown:
            what = f"{where} option(s)" if where else "config section(s)"
            raise ConfigError(f"unknown {what} {unknown}; valid: {sorted(keys)}")
        missing = [k for k in keys if k not in values]
        if missing:
            raise ConfigError(f"config {'section ' + repr(where) if where else 'of ' + cls.__name__} lacks "
                              f"{', '.join(map(repr, missing))}: the method's "
                              f"config.yaml must set every key (it is the only source of defaults)")
        hints = cls.hints()
        checked = {}
        for key in keys:
            path = f"{where}.{key}" if where else key
            try:
                checked[key] = _coerce(values[key], hints[key], path)
            except _Mismatch as exc:
                raise ConfigError(f"config key '{path}': {values[key]!r} is not allowed; expected {exc}") from None
        try:
            return cls(**checked, **runtime)
        except ValueError as exc:  # a check of the class's own (__post_init__) that spans keys
            raise ConfigError(f"config section {where!r}: {exc}" if where else f"config: {exc}") from None
