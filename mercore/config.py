"""Layered configuration: core defaults < method defaults < variant < profile < file < --set.

Every override must name a key that exists in the defaults: a typo is an error listing the
valid keys at that level, never a silently ignored setting. Values are parsed as YAML
(``safe_load``), never evaluated.
"""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml


class ConfigError(ValueError):
    """An invalid configuration value or key; the message names it."""


def core_defaults() -> dict[str, Any]:
    return yaml.safe_load(resources.files("mercore").joinpath("configs/core.yaml").read_text())


def load_yaml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any], *, strict: bool = False,
               where: str = "", origin: str = "") -> dict[str, Any]:
    """``override`` merged into a copy of ``base``; with ``strict``, unknown keys are errors.

    A mapping under a key named ``params`` holds a feature extractor's keyword arguments: it is
    open (any key), and the extractor checks its arguments when it is built.
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        path = f"{where}.{key}" if where else str(key)
        if strict and key not in out and where.rpartition(".")[2] != "params":
            valid = ", ".join(sorted(map(str, out))) or "(none)"
            raise ConfigError(f"unknown config key {path!r}{origin}; valid keys{' under ' + repr(where) if where else ''}: {valid}")
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value, strict=strict, where=path, origin=origin)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """``["train.lr=0.01", "model.layers=[1,2]"]`` -> nested dict; values parsed as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=0.001")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is set both as a value and as a section")
        node[parts[-1]] = value
    return out


def resolve_config(method: Any, *, variant: str | None = None, profile: str | None = None,
                   config_file: Path | str | None = None, sets: Iterable[str] = ()) -> dict[str, Any]:
    """The full configuration of one run of ``method``."""
    defaults = method.default_config()
    variants = dict(defaults.pop("variants", {}) or {})
    defaults.pop("profiles", None)
    config = deep_merge(core_defaults(), defaults)
    variant = variant or method.default_variant
    if method.variants:
        if variant not in method.variants:
            raise ConfigError(f"unknown variant {variant!r} of {method.name}; choose one of: {', '.join(method.variants)}")
        config = deep_merge(config, variants.get(variant, {}) or {}, strict=True, origin=f" (variant {variant})")
    elif variant:
        raise ConfigError(f"method {method.name} has no variants; drop --variant {variant}")
    if profile and profile != "paper":
        profiles = method.profiles()
        if profile not in profiles:
            raise ConfigError(f"unknown profile {profile!r} of {method.name}; choose one of: {', '.join(['paper', *profiles])}")
        config = deep_merge(config, profiles[profile] or {}, strict=True, origin=f" (profile {profile})")
    if config_file:
        config = deep_merge(config, load_yaml(config_file), strict=True, origin=f" (in {config_file})")
    config = deep_merge(config, parse_set(sets), strict=True, origin=" (from --set)")
    config["meta"] = {"method": method.name, "variant": variant, "profile": profile or "paper"}
    return config


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"train.lr": 0.001, ...}`` (for MLflow params)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out
