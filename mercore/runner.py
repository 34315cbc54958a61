"""``mer run`` as a function: plugin -> dataset -> config -> LOSO -> metrics -> MLflow."""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .config import ConfigError, resolve_config
from .data.dataset import LoadedDataset, LoadOptions
from .environment import software_versions
from .evaluation.loso import LOSOEvaluator
from .evaluation.results import RunResult, SeedsResult
from .interfaces import Method
from .plugins import Registry, load_registry
from .report import write_report
from .reporting import write_artifacts, write_seed_artifacts
from .tracking import make_tracker

QUICK = "quick"


def load_method(registry: Registry | None, name: str) -> tuple[Registry, Method]:
    """Import only the plugin named ``name`` (plus builtins); fall back to all plugins when the
    method lives in a plugin whose entry point has another name."""
    registry = registry or load_registry(only=[name])
    if name not in registry.methods:
        registry = load_registry()
    return registry, registry.method(name)


def select_subjects(data: LoadedDataset, subjects: Sequence[str] | None) -> LoadedDataset:
    """Keep the samples of the named subjects (``sub01`` or ``casme2/sub01``)."""
    if not subjects:
        return data
    wanted = set(subjects)
    kept = [s for s in data.samples if s.subject in wanted or s.group in wanted]
    found = {s.subject for s in kept} | {s.group for s in kept}
    missing = sorted(w for w in wanted if w not in found)
    if missing:
        raise ConfigError(f"--subjects: no samples for {', '.join(missing)}; subjects are: {', '.join(data.subjects)}")
    return LoadedDataset(data.name, data.task, data.labels, kept, data.skipped)


def default_profile(method: Method, dataset: str, profile: str | None) -> str:
    """The quick profile is the default on the built-in synthetic corpus, the paper's setup elsewhere."""
    if profile:
        return profile
    return QUICK if dataset == "synthetic" and QUICK in method.profiles() else "paper"


def run_key(parts: Mapping[str, Any]) -> str:
    """Runs with the same method, data and config share a folder, so a rerun resumes. Settings
    that cannot change a fold's predictions (feature workers, bootstrap resamples) are left out."""
    relevant = json.loads(json.dumps(parts, sort_keys=True, default=str))
    relevant.get("config", {}).get("run", {}).pop("feature_workers", None)
    relevant.get("config", {}).get("evaluation", {}).pop("bootstrap", None)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Prepared:
    """Everything a LOSO run (or a tune) needs before the first fold: the method, its resolved
    config, the loaded samples and the identity (``key_parts``) its results folder is named by."""

    registry: Registry
    method: Method
    config: dict[str, Any]
    data: LoadedDataset
    dataset: str
    cache_dir: Path
    key_parts: dict[str, Any]

    @property
    def variant(self) -> str | None:
        return self.config["meta"]["variant"]

    def folder(self, kind: str, extra: Mapping[str, Any] | None = None) -> Path:
        """``<cache>/<kind>/<method>-<dataset>-<key>``: the results folder of these settings."""
        key = run_key({**self.key_parts, **(extra or {})})
        return self.cache_dir / kind / f"{self.method.name}-{self.dataset}-{key}"

    def tags(self) -> dict[str, str]:
        return {"mer.method": self.method.name, "mer.variant": str(self.variant), "mer.dataset": self.dataset,
                "mer.task": self.data.task, "mer.profile": self.config["meta"]["profile"]}

    def title(self) -> str:
        return f"{self.method.name}{'-' + self.variant if self.variant else ''} {self.dataset} {self.data.task}"


def overrides_list(overrides: Iterable[str] | Mapping[str, Any], device: str | None = None) -> list[str]:
    """``--set`` strings from strings or a flat ``{"train.lr": 0.01}`` mapping (plus the device)."""
    sets = [f"{k}={json.dumps(v)}" for k, v in overrides.items()] if isinstance(overrides, Mapping) else list(overrides)
    if device:
        sets.append(f"run.device={device}")
    return sets


def resolve_method(method: str | Method, registry: Registry | None) -> tuple[Registry, Method]:
    if isinstance(method, str):
        return load_method(registry, method)
    return registry or load_registry(), method


def prepare(method: str | Method, *, dataset: str = "synthetic", variant: str | None = None, task: str | None = None,
            data_root: Path | str | None = None, config_file: Path | str | None = None,
            overrides: Iterable[str] | Mapping[str, Any] = (), profile: str | None = None,
            subjects: Sequence[str] | None = None, device: str | None = None, cache_dir: Path | str = ".mer",
            skip_invalid: bool = False, dataset_options: Mapping[str, Any] | None = None,
            registry: Registry | None = None) -> Prepared:
    """Resolve the config and load the samples, checking that method and data fit together."""
    registry, method_obj = resolve_method(method, registry)
    profile = default_profile(method_obj, dataset, profile)
    config = resolve_config(method_obj, variant=variant, profile=profile, config_file=config_file,
                            sets=overrides_list(overrides, device))
    ds = registry.dataset(dataset)
    if ds.requires_root and data_root is None:
        raise ConfigError(f"dataset {dataset!r} needs --data-root (the folder holding the corpus as distributed)")
    cache_dir = Path(cache_dir)
    options = LoadOptions(task=task, skip_invalid=skip_invalid, cache_dir=cache_dir, extra=dict(dataset_options or {}))
    data = select_subjects(ds.load(Path(data_root).expanduser() if data_root else None, options), subjects)
    if ds.kind not in method_obj.inputs and not _inputs_overridden(config):
        raise ConfigError(f"method {method_obj.name} reads {', '.join(method_obj.inputs)} but dataset {dataset!r} "
                          f"provides {ds.kind}")
    config["meta"].update({"dataset": dataset, "task": data.task, "samples": len(data.samples),
                           "subjects": len(data.subjects)})
    key_parts = {"method": method_obj.name, "dataset": dataset, "root": str(data_root), "task": data.task,
                 "samples": [s.key for s in data.samples], "config": config, "options": options.extra}
    return Prepared(registry, method_obj, config, data, dataset, cache_dir, key_parts)


def run(method: str | Method, *, dataset: str = "synthetic", variant: str | None = None, task: str | None = None,
        data_root: Path | str | None = None, config_file: Path | str | None = None,
        overrides: Iterable[str] | Mapping[str, Any] = (), profile: str | None = None,
        subjects: Sequence[str] | None = None, device: str | None = None, tracking: bool = True,
        tracking_uri: str | None = None, experiment: str = "mer", cache_dir: Path | str = ".mer",
        skip_invalid: bool = False, dataset_options: Mapping[str, Any] | None = None, fresh: bool = False,
        progress: bool = True, registry: Registry | None = None, run_name: str | None = None,
        workers: int | str = 0, executor: str = "local", address: str | None = None) -> RunResult:
    """Run a LOSO evaluation of ``method`` and return the pooled result.

    ``overrides`` are ``key=value`` strings (as ``--set``) or a flat ``{"train.lr": 0.01}`` mapping.
    ``workers`` > 1 runs folds in that many processes (sequential results up to thread-count
    rounding); ``"auto"``, the CLI's default, is one per CPU core (at most 4) on CPU and none on
    a GPU. ``executor="ray"`` ships folds as Ray tasks to a local or remote (``address``) cluster.
    """
    prep = prepare(method, dataset=dataset, variant=variant, task=task, data_root=data_root, config_file=config_file,
                   overrides=overrides, profile=profile, subjects=subjects, device=device, cache_dir=cache_dir,
                   skip_invalid=skip_invalid, dataset_options=dataset_options, registry=registry)
    run_dir = prep.folder("runs")
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    store = prep.registry.feature_store(prep.cache_dir)
    evaluator = LOSOEvaluator(store, run_dir, progress=progress, workers=workers, executor=executor, address=address)
    tracker = make_tracker(tracking, tracking_uri, experiment)
    tags = {**prep.tags(), "mer.run_dir": str(run_dir)}
    environment = software_versions(prep.registry.distribution_of(prep.method.name))
    with tracker.parent(run_name or prep.title(), prep.config, tags, environment):
        result = evaluator.evaluate(prep.method, prep.data, prep.config, variant=prep.variant, on_fold=tracker.log_fold)
        result.mlflow_run_id = tracker.run_id
        result.environment = environment
        artifacts = write_artifacts(result, run_dir / "artifacts")
        artifacts += write_report(result, run_dir / "artifacts")
        tracker.log_result(result, artifacts)
    return result


def seed_list(seeds: int | Sequence[int], base: int) -> list[int]:
    """``--seeds``: a count N gives the N seeds from ``run.seed`` on; a list is taken as given."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: give a count >= 1 or a list such as 0,1,2")
        return list(range(base, base + seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"--seeds {','.join(map(str, out))}: give distinct seeds")
    return out


def run_seeds(method: str | Method, seeds: int | Sequence[int], *, overrides: Iterable[str] | Mapping[str, Any] = (),
              tracking: bool = True, tracking_uri: str | None = None, experiment: str = "mer",
              registry: Registry | None = None, **kwargs: Any) -> SeedsResult:
    """The LOSO run of :func:`run` once per seed, aggregated.

    Each seed is an ordinary run (``run.seed`` set), so it has its own run folder keyed by its
    config and resumes per (seed, fold); the feature cache is shared. The aggregate (each seed's
    UF1/UAR with intervals, mean +- std, the interval of the seed mean) goes to a folder of its
    own and to an MLflow parent run holding the seeds' runs as children.
    """
    registry, method_obj = resolve_method(method, registry)
    sets = overrides_list(overrides)
    base = prepare(method_obj, overrides=sets, registry=registry, **_prepare_kwargs(kwargs))
    chosen = seed_list(seeds, int(base.config["run"]["seed"]))
    tracker = make_tracker(tracking, tracking_uri, experiment)
    environment = software_versions(registry.distribution_of(method_obj.name))
    name = f"{kwargs.get('run_name') or base.title()} seeds {','.join(map(str, chosen))}"
    with tracker.parent(name, base.config, {**base.tags(), "mer.seeds": ",".join(map(str, chosen))}, environment):
        runs = [run(method_obj, overrides=[*sets, f"run.seed={s}"], tracking=tracking, tracking_uri=tracking_uri,
                    experiment=experiment, registry=registry, **{**kwargs, "run_name": f"{name}: seed {s}"})
                for s in chosen]
        folder = base.folder("seeds", {"runs": [r.run_dir.name for r in runs]})
        result = SeedsResult(runs, folder, tracker.run_id)
        artifacts = write_seed_artifacts(result, folder)
        artifacts += write_report(result, folder / "artifacts")
        tracker.log_seeds(result, artifacts)
    return result


def _prepare_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`run` that :func:`prepare` takes too."""
    names = ("dataset", "variant", "task", "data_root", "config_file", "profile", "subjects", "device", "cache_dir",
             "skip_invalid", "dataset_options")
    return {k: v for k, v in kwargs.items() if k in names}


def _inputs_overridden(config: Mapping[str, Any]) -> bool:
    """A config whose feature section names release extractors can run on flow releases."""
    return "release_" in json.dumps(config.get("features", {}))
