"""Layered configuration: core defaults < method defaults < variant < profile < file < --set.

The method's defaults, each variant and each profile may carry two conditional sections that
apply right after the layer that holds them: ``inputs: {<input kind>: {...}}`` for the kind of
data the dataset provides (``clips``, ``flow-release``), then ``datasets: {<dataset>: {...}}`` for
the dataset by name. A method thus picks its release inputs, or a per-corpus value, in its YAML.

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


CONDITIONAL_SECTIONS = ("inputs", "datasets")


def _apply_layer(config: dict[str, Any], layer: Mapping[str, Any] | None, label: str, *, inputs: str | None,
                 dataset: str | None) -> dict[str, Any]:
    """Merge ``layer`` (named ``label`` in errors; the method defaults, ``""``, may add keys),
    then its ``inputs[inputs]`` and ``datasets[dataset]`` sections."""
    layer = dict(layer or {})
    conditional = {name: layer.pop(name, None) or {} for name in CONDITIONAL_SECTIONS}
    config = deep_merge(config, layer, strict=bool(label), origin=f" ({label})" if label else "")
    for name, key in zip(CONDITIONAL_SECTIONS, (inputs, dataset)):
        if not isinstance(conditional[name], Mapping):
            raise ConfigError(f"config section {name!r} ({label or 'method defaults'}) must map names to overrides")
        if key is not None and conditional[name].get(key):
            where = f"{label + ', ' if label else ''}{name} {key}"
            config = deep_merge(config, conditional[name][key], strict=True, origin=f" ({where})")
    return config


def resolve_config(method: Any, *, variant: str | None = None, profile: str | None = None,
                   config_file: Path | str | None = None, sets: Iterable[str] = (), inputs: str | None = "clips",
                   dataset: str | None = None) -> dict[str, Any]:
    """The full configuration of one run of ``method`` on a dataset of input kind ``inputs``
    (``clips`` or ``flow-release``; None applies no ``inputs`` section) named ``dataset``."""
    defaults = method.default_config()
    variants = dict(defaults.pop("variants", {}) or {})
    defaults.pop("profiles", None)
    where = {"inputs": inputs, "dataset": dataset}
    config = _apply_layer(core_defaults(), defaults, "", **where)
    variant = variant or method.default_variant
    if method.variants:
        if variant not in method.variants:
            raise ConfigError(f"unknown variant {variant!r} of {method.name}; choose one of: {', '.join(method.variants)}")
        config = _apply_layer(config, variants.get(variant), f"variant {variant}", **where)
    elif variant:
        raise ConfigError(f"method {method.name} has no variants; drop --variant {variant}")
    if profile and profile != "paper":
        profiles = method.profiles()
        if profile not in profiles:
            raise ConfigError(f"unknown profile {profile!r} of {method.name}; choose one of: {', '.join(['paper', *profiles])}")
        config = _apply_layer(config, profiles[profile], f"profile {profile}", **where)
    if config_file:
        config = deep_merge(config, load_yaml(config_file), strict=True, origin=f" (in {config_file})")
    config = deep_merge(config, parse_set(sets), strict=True, origin=" (from --set)")
    config["meta"] = {"method": method.name, "variant": variant, "profile": profile or "paper"}
    if inputs is not None:
        config["meta"]["inputs"] = inputs
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
