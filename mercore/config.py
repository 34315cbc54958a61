"""Layered configuration: core defaults < method defaults < variant < profile < file < --set.

The method's defaults, each variant and each profile may carry two conditional sections that
apply right after the layer that holds them: ``inputs: {<input kind>: {...}}`` for the kind of
data the dataset provides (``clips``, ``flow-release``), then ``datasets: {<dataset>: {...}}`` for
the dataset by name. A method thus picks its release inputs, or a per-corpus value, in its YAML.

Every override must name a key that exists in the defaults: a typo is an error listing the
valid keys at that level, never a silently ignored setting. An override must also have the type
of the default it replaces (an integer stays an integer; a float accepts integers), and
``mercore.core_settings.validate_config`` checks the values the core and its trainers read, so a bad value stops
the run before any work with one line naming the key, the value and what is allowed. Values are
parsed as YAML (``safe_load`` plus exponent floats such as ``1e-3``), never evaluated.

``features.align: auto`` (every clip method's face alignment) is settled here, once the layers are
merged, so that the resolved config, the run folder's key and the feature cache all hold what is
actually done: ``dlib`` on a raw clip corpus when the ``dlib`` extra is installed, otherwise
``none`` (with a one-line notice in ``config["meta"]["notices"]`` when a raw corpus goes unaligned).
The ``paper`` profile refuses that instead: every paper crops faces, and its regions, landmarks
and apex spotting assume a crop, so it runs on whole frames only when ``features.align=none``
asks for them.
"""
from __future__ import annotations

import copy
import functools
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

#: optimiser and learning-rate schedule names of ``mercore.training.supervised`` (every trainer's)
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "cosine")


class ConfigError(ValueError):
    """An invalid configuration value or key; the message names it."""


class _Loader(yaml.SafeLoader):
    """``safe_load`` that also reads ``1e-3`` as a float: YAML 1.1 wants ``1.0e-3`` and would
    hand the trainer the string "1e-3", while Python and every paper write it the short way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def yaml_load(text: str) -> Any:
    """Plain YAML data from ``text`` (never objects), with exponent floats read as floats."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 -- _Loader is a SafeLoader


#: Mappings whose keys are not checked against the defaults (see :func:`deep_merge`).
OPEN_SECTIONS = ("params", "options")
ALIGN_CHOICES = ("auto", "dlib", "none")


@functools.lru_cache(maxsize=None)
def _packaged_yaml(name: str) -> Any:
    """A YAML file of ``mercore/configs``, parsed once: every settings section built reads it."""
    return yaml_load(resources.files("mercore").joinpath(f"configs/{name}").read_text())


def core_defaults() -> dict[str, Any]:
    return copy.deepcopy(_packaged_yaml("core.yaml"))


def trainer_defaults(kind: str) -> dict[str, Any]:
    """The defaults of a core trainer (``supervised``, ``triplet``, ``episodic``, ``perturbation``),
    from ``mercore/configs/trainers.yaml``: the only place they are written."""
    table = copy.deepcopy(_packaged_yaml("trainers.yaml"))
    if kind not in table:
        raise ConfigError(f"unknown trainer kind {kind!r}; choose one of: {', '.join(table)}")
    return table[kind]


def load_yaml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; give a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text (a binary file?); give a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any], *, strict: bool = False,
               where: str = "", origin: str = "") -> dict[str, Any]:
    """``override`` merged into a copy of ``base``; with ``strict``, unknown keys are errors.

    A mapping under a key named ``params`` holds a feature extractor's keyword arguments, one named
    ``options`` a dataset adapter's options (``data.options``, as ``-D key=value``): both are open
    (any key), and the extractor or adapter checks them when it is used. With ``strict``, a
    value must also fit the type of the one it replaces (:func:`_check_type`).
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        path = f"{where}.{key}" if where else str(key)
        if strict and key not in out and where.rpartition(".")[2] not in OPEN_SECTIONS:
            valid = ", ".join(sorted(map(str, out))) or "(none)"
            raise ConfigError(f"unknown config key {path!r}{origin}; valid keys{' under ' + repr(where) if where else ''}: {valid}")
        if strict and key in out:
            value = _check_type(path, out[key], value, origin)
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value, strict=strict, where=path, origin=origin)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _kind(value: Any) -> str:
    return "true or false" if isinstance(value, bool) else "an integer" if isinstance(value, int) else "a finite number"


def _check_type(path: str, default: Any, value: Any, origin: str) -> Any:
    """``value`` if it may replace ``default`` (floats accept integers and become floats).

    Booleans and numbers are checked, and a section must stay a section; strings and lists are
    left to the rules of :func:`validate_config`, since several keys take a word or a list
    (``streams: all`` or ``[flow]``). ``null`` may replace anything: many keys use it for "off".
    """
    if default is None or value is None:
        return value
    if isinstance(default, Mapping) and not isinstance(value, Mapping):
        raise ConfigError(f"config key {path!r}{origin} is a section (keys: {', '.join(map(str, default))}), "
                          f"not a value: got {value!r}; set one of its keys, e.g. {path}.{next(iter(default), 'key')}=...")
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    else:
        return value
    if not ok:
        raise ConfigError(f"config key {path!r}{origin}: expected {_kind(default)} (like the default {default!r}), "
                          f"got {value!r}")
    return value


def parse_set(items: Iterable[str], option: str = "--set", example: str = "train.lr=0.001") -> dict[str, Any]:
    """``["train.lr=1e-3", "model.layers=[1,2]"]`` -> nested dict; values parsed as YAML
    (:func:`yaml_load`: ``1e-3`` is the float 0.001). ``option`` and ``example`` are what an error
    names: ``--set`` or the ``-D`` of dataset options."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {item!r}: expected key=value, e.g. {example}")
        try:
            value = yaml_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{option} {item!r}: {part!r} is set both as a value and as a section")
        node[parts[-1]] = value
    return out


def parse_dataset_options(items: Iterable[str]) -> dict[str, Any]:
    """``-D key=value`` dataset adapter options, parsed as ``--set`` values are."""
    return parse_set(items, option="-D/--dataset-option", example="-D subjects=8")


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


def resolve_align(config: dict[str, Any], *, inputs: str | None, aligned: bool | None) -> str | None:
    """Settle ``features.align: auto`` in place; return a notice when a raw corpus goes unaligned.

    ``auto`` is ``dlib`` for clips of a corpus whose frames are not aligned faces (``aligned`` is
    False: the dataset's ``face_aligned``) when dlib is installed, else ``none``. Releases
    (``inputs`` other than clips) hold cropped maps and aligned corpora need nothing, so both get
    ``none``; so does an unknown corpus (``aligned`` None: a config resolved outside ``mer run``).
    """
    feats = config.get("features")
    if not isinstance(feats, dict) or "align" not in feats:
        return None
    if feats["align"] not in ALIGN_CHOICES:
        raise ConfigError(f"features.align must be one of {', '.join(ALIGN_CHOICES)}, got {feats['align']!r}")
    if feats["align"] != "auto":
        return None
    feats["align"] = "none"
    if inputs != "clips" or aligned is not False:
        return None
    from .face.landmarks import INSTALL_HINT, dlib_installed

    if dlib_installed():
        feats["align"] = "dlib"
        return None
    return (f"Faces are not detected or aligned (features.align auto -> none): dlib is not installed, so "
            f"whole frames are resized. For the papers' face crops: {INSTALL_HINT}")


def resolve_config(method: Any, *, variant: str | None = None, profile: str | None = None,
                   config_file: Path | str | None = None, sets: Iterable[str] = (), inputs: str | None = "clips",
                   dataset: str | None = None, aligned: bool | None = None) -> dict[str, Any]:
    """The full configuration of one run of ``method`` on a dataset of input kind ``inputs``
    (``clips`` or ``flow-release``; None applies no ``inputs`` section) named ``dataset``, whose
    frames are already aligned faces when ``aligned`` (the runner passes the dataset's
    ``face_aligned``; see :func:`resolve_align`)."""
    defaults = method.default_config()
    variants = dict(defaults.pop("variants", {}) or {})
    defaults.pop("profiles", None)
    where = {"inputs": inputs, "dataset": dataset}
    base = core_defaults()
    for path, kind in getattr(method, "trainer_sections", {}).items():  # each trainer's full section, for the method to override
        *parents, last = path.split(".")
        node = base
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = trainer_defaults(kind)
    config = _apply_layer(base, defaults, "", **where)
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
    notice = resolve_align(config, inputs=inputs, aligned=aligned)
    if notice and (profile or "paper") == "paper":
        from .face.landmarks import INSTALL_HINT

        raise ConfigError(f"{method.name}'s paper profile crops faces, as the papers' inputs are, but dlib is not installed: "
                          f"{INSTALL_HINT}; or run on unaligned whole frames with --set features.align=none")
    config["meta"] = {"method": method.name, "variant": variant, "profile": profile or "paper"}
    if inputs is not None:
        config["meta"]["inputs"] = inputs
    if notice:
        config["meta"]["notices"] = [notice]
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
