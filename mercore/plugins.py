"""Plugin discovery and the registry of what plugins contribute.

Entry points of the group ``mer`` are loaded one by one inside ``try``: a plugin that fails to
import or whose hook raises is recorded with its error and the others still load (pluggy's own
``load_setuptools_entrypoints`` would stop at the first failure). Two plugins registering one
name is an error naming both. Environment switches, in the style of llm and tox:

* ``MER_PLUGINS=a,b``: load only these entry points (the core's builtins always load);
* ``MER_DISABLE_PLUGINS=a,b``: skip these;
* ``MER_STRICT_PLUGINS=1``: re-raise a plugin's error instead of recording it.
"""
from __future__ import annotations

import fnmatch
import importlib.metadata as md
import inspect
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import pluggy

from . import hookspecs

if TYPE_CHECKING:
    from .features.store import FeatureStore

ENTRY_POINT_GROUP = "mer"
BUILTIN = "mercore-builtin"


class PluginError(RuntimeError):
    """A plugin could not be loaded or registered something invalid."""


class UnknownNameError(KeyError):
    """A name not in the registry; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


@dataclass
class Entry:
    name: str
    obj: Any
    plugin: str


@dataclass
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    module: str
    error: str | None = None
    traceback: str | None = None


@dataclass
class Registry:
    """Methods, datasets and feature extractors by name, each with the plugin it came from."""

    methods: dict[str, Entry] = field(default_factory=dict)
    datasets: dict[str, Entry] = field(default_factory=dict)
    extractors: dict[str, Entry] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    manager: pluggy.PluginManager | None = None

    # lookups ---------------------------------------------------------------------------------
    def _get(self, table: dict[str, Entry], kind: str, name: str) -> Any:
        if name not in table:
            broken = [p.name for p in self.plugins.values() if p.error]
            hint = f" (plugins that failed to load: {', '.join(broken)}; see `mer plugins`)" if broken else ""
            raise UnknownNameError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(table)) or '(none)'}{hint}")
        return table[name].obj

    def method(self, name: str) -> Any:
        obj = self._get(self.methods, "method", name)
        return obj() if inspect.isclass(obj) else obj

    def dataset(self, name: str) -> Any:
        obj = self._get(self.datasets, "dataset", name)
        return obj() if inspect.isclass(obj) else obj

    def dataset_adapters(self) -> dict[str, Any]:
        """Every registered dataset adapter by name: what a run hands its stages
        (``StageContext.datasets``), so no stage looks one up mid-fold."""
        return {name: self.dataset(name) for name in self.list("datasets")}

    def distribution_of(self, method: str) -> str | None:
        """The distribution (e.g. ``mer-mpfnet``) whose plugin registered ``method``, if known."""
        entry = self.methods.get(method)
        info = self.plugins.get(entry.plugin) if entry else None
        return info.distribution if info else None

    def extractor(self, name: str) -> type:
        return self._get(self.extractors, "feature extractor", name)

    def feature_store(self, cache_dir: Path | str | None) -> FeatureStore:
        """A feature store over every registered extractor, caching under ``cache_dir`` (None: no cache)."""
        from .features.store import FeatureStore  # imports torch, which `mer plugins` does not need

        return FeatureStore({n: e.obj for n, e in self.extractors.items()}, cache_dir)

    def list(self, kind: str, pattern: str = "*") -> list[str]:
        table = {"methods": self.methods, "datasets": self.datasets, "extractors": self.extractors}[kind]
        return sorted(n for n in table if fnmatch.fnmatch(n, pattern))

    # registration ----------------------------------------------------------------------------
    def _add(self, table: dict[str, Entry], kind: str, obj: Any, plugin: str) -> tuple[str, str] | None:
        """Register ``obj``; returns ``(plugin it was taken from, message)`` when ``plugin`` owns the
        name (its entry point is called that) and another non-builtin plugin had registered it."""
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {kind} without a string `name`: {obj!r}")
        check_contract(kind, obj, plugin)
        taken = None
        if name in table and table[name].plugin != plugin:
            other = table[name].plugin
            message = f"{kind} {name!r} is registered by both plugin {other!r} and plugin {plugin!r}"
            if not (plugin == name and other not in (name, BUILTIN)):
                raise PluginError(message)
            taken = (other, f"{message}; it belongs to {plugin!r}, whose entry point has its name")
        table[name] = Entry(name, obj, plugin)
        return taken

    def _drop(self, plugin: str, error: str) -> None:
        """Remove everything ``plugin`` registered and record it as broken with ``error``."""
        for table in (self.methods, self.datasets, self.extractors):
            for name in [n for n, e in table.items() if e.plugin == plugin]:
                del table[name]
        self.plugins[plugin].error = error
        if self.manager is not None and self.manager.get_plugin(plugin) is not None:
            self.manager.unregister(name=plugin)


def check_contract(kind: str, obj: Any, plugin: str) -> None:
    """Refuse at registration what the core could not call: a method, dataset or feature extractor
    that is not a subclass of its interface, leaves one of its abstract methods out, or (a
    dataset) declares no label task. The message names the plugin, the class and what is missing."""
    from .data.dataset import Dataset
    from .interfaces import FeatureExtractor
    from .method import Method

    base = {"method": Method, "dataset": Dataset, "feature extractor": FeatureExtractor}[kind]
    cls = obj if inspect.isclass(obj) else type(obj)
    where = f"plugin {plugin!r}: {kind} {cls.__module__}.{cls.__qualname__}"
    if not issubclass(cls, base):
        raise PluginError(f"{where} is not a subclass of mercore.{base.__name__}")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise PluginError(f"{where} does not implement {', '.join(missing)} (abstract in mercore.{base.__name__})")
    if base is Dataset and issubclass(cls, Dataset) and (not cls.tasks or cls.default_task not in cls.tasks):
        raise PluginError(f"{where} declares no label task, or its default_task {cls.default_task!r} is not one of "
                          f"its tasks {sorted(cls.tasks)}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r}): the plugin called sys.exit while loading"
    return f"{type(exc).__name__}: {exc}"


def _call_hooks(registry: Registry, pm: pluggy.PluginManager, plugin_name: str, plugin: Any, strict: bool) -> None:
    """Run one plugin's registration hooks into ``registry``; on error roll back its entries.
    One plugin at a time (not one ``pm.hook`` call for all), so a broken plugin is named and
    rolled back alone."""
    tables = (("mer_register_methods", registry.methods, "method"),
              ("mer_register_datasets", registry.datasets, "dataset"),
              ("mer_register_feature_extractors", registry.extractors, "feature extractor"))
    snapshot = [dict(t) for _, t, _ in tables]
    taken: list[tuple[str, str]] = []  # (plugin, why): plugins this one takes a name from

    def register(table: dict[str, Entry], kind: str, obj: Any) -> None:
        if (lost := registry._add(table, kind, obj, plugin_name)) is not None:
            taken.append(lost)
    others = [p for p in pm.get_plugins() if p is not plugin]
    try:
        for hook_name, table, kind in tables:  # pluggy's own call, restricted to this plugin's implementations
            call = pm.subset_hook_caller(hook_name, remove_plugins=others)
            call(register=lambda obj, _t=table, _k=kind: register(_t, _k, obj))
        for other, why in taken:  # only once this plugin registered everything
            registry._drop(other, why)
    except (Exception, SystemExit) as exc:  # a broken plugin must not break the others
        for (_, table, _), saved in zip(tables, snapshot):
            table.clear()
            table.update(saved)
        if strict:
            raise
        info = registry.plugins[plugin_name]
        info.error = _describe(exc)
        info.traceback = traceback.format_exc()
        pm.unregister(plugin)


def _wanted(name: str, only: Iterable[str] | None) -> bool:
    env_only = [p for p in os.environ.get("MER_PLUGINS", "").split(",") if p]
    disabled = {p for p in os.environ.get("MER_DISABLE_PLUGINS", "").split(",") if p}
    if name == BUILTIN:
        return True
    if name in disabled:
        return False
    if env_only and name not in env_only:
        return False
    return only is None or name in set(only)


def entry_points() -> list[md.EntryPoint]:
    return sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name != BUILTIN, ep.name))


def load_registry(only: Iterable[str] | None = None, *, extra_plugins: Iterable[tuple[str, Any]] = (),
                  strict: bool | None = None) -> Registry:
    """Discover plugins through entry points (and ``extra_plugins``) and collect what they register.

    Args:
        only: entry-point names to load besides the builtins (``None`` loads all).
        extra_plugins: ``(name, module_or_object)`` pairs registered directly (tests, scripts).
        strict: re-raise plugin errors; defaults to ``MER_STRICT_PLUGINS``.
    """
    strict = os.environ.get("MER_STRICT_PLUGINS", "") not in ("", "0") if strict is None else strict
    pm = pluggy.PluginManager("mer")
    pm.add_hookspecs(hookspecs)
    registry = Registry(manager=pm)
    seen: dict[str, str] = {}

    candidates: list[tuple[str, Any, md.EntryPoint | None]] = []
    for ep in entry_points():
        if not _wanted(ep.name, only):
            continue
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        if ep.name in seen:
            registry.plugins[f"{ep.name} ({dist_name})"] = PluginInfo(
                ep.name, dist_name, dist.version if dist else None, ep.value,
                error=f"duplicate entry point: {ep.name!r} is also provided by {seen[ep.name]!r}; this one is ignored")
            continue
        seen[ep.name] = dist_name or ep.value
        registry.plugins[ep.name] = PluginInfo(ep.name, dist_name, dist.version if dist else None, ep.value)
        try:
            obj = ep.load()
        except (Exception, SystemExit) as exc:  # sys.exit() at import must not end `mer` in silence
            if strict:
                raise
            registry.plugins[ep.name].error = _describe(exc)
            registry.plugins[ep.name].traceback = traceback.format_exc()
            continue
        candidates.append((ep.name, obj, ep))
    for name, obj in extra_plugins:
        registry.plugins[name] = PluginInfo(name, None, None, getattr(obj, "__name__", repr(obj)))
        candidates.append((name, obj, None))

    for name, obj, _ in candidates:
        try:
            pm.register(obj, name=name)
        except (Exception, SystemExit) as exc:  # e.g. a hook implementation that matches no spec signature
            if strict:
                raise
            registry.plugins[name].error = _describe(exc)
            continue
        _call_hooks(registry, pm, name, obj, strict)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        bad = getattr(exc, "plugin", None)
        bad_name = pm.get_name(bad) if bad is not None else None
        if strict:
            raise
        if bad_name in registry.plugins:
            registry.plugins[bad_name].error = f"unknown hook: {exc}"
    return registry

