"""``mer run`` as a function: plugin -> dataset -> config -> LOSO -> metrics -> MLflow."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from .config import ConfigError, resolve_config
from .core_settings import CoreSettings, validate_config
from .data.dataset import Dataset, LoadedDataset, LoadOptions
from .environment import software_versions
from .evaluation.identity import prediction_settings
from .evaluation.loso import LOSOEvaluator
from .evaluation.results import RunResult, SeedsResult
from .method import Method
from .interrupt import Interrupted
from .io import atomic_write_text
from .plugins import Registry, load_registry
from .reporting.html import write_report
from .reporting.artifacts import write_artifacts, write_seed_artifacts
from .spec import ExecutionOptions, RunSpec
from .tracking import TrackingError, make_tracker

QUICK = "quick"
log = logging.getLogger(__name__)


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


def check_loso_subjects(data: LoadedDataset, subjects: Sequence[str] | None) -> None:
    """LOSO trains each fold on the other subjects: one subject leaves nothing to train on."""
    if len(data.subjects) < 2:
        source = f"--subjects {' '.join(subjects)}" if subjects else f"dataset {data.name!r} ({data.task})"
        raise ConfigError(f"{source}: leave-one-subject-out needs at least 2 subjects, got "
                          f"{len(data.subjects)} ({', '.join(data.subjects) or 'none'})")


def check_run_options(config: dict[str, Any]) -> CoreSettings:
    """Everything the run will read, checked before any data are read (one line each, exit 2);
    the execution options checked themselves when they were made (:class:`ExecutionOptions`).
    Returns the core sections, typed."""
    from .training.device import resolve_device

    core = validate_config(config)
    try:
        device = resolve_device(core.run.device)
        if core.run.compile:
            from .training.compiled import check_compiler

            check_compiler(device)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(str(exc)) from None
    return core


def check_dataset_options(dataset: Dataset, from_config: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """Refuse, before anything is read or generated, an adapter option the dataset does not read
    (``Dataset.options``: it would change nothing but the run folder, recomputing every fold) and
    a value the adapter refuses (``Dataset.check_options``, e.g. a synthetic corpus beyond its bounds)."""
    if dataset.options is not None:
        accepted = ", ".join(dataset.options) or "none"
        for where, options in (("-D {}", given), ("config key 'data.options.{}'", from_config)):
            for key in options:
                if key not in dataset.options:
                    raise ConfigError(f"{where.format(key)}: dataset {dataset.name!r} has no option {key!r}; "
                                      f"its options: {accepted}")
    dataset.check_options({**from_config, **given})


def check_features(method: Method, config: Mapping[str, Any], registry: Registry) -> None:
    """Build the feature extractors of the method's streams from ``config`` before any data are
    read or written (the synthetic corpus is generated on first use), so that a value such as
    ``features.size=0`` stops the run in one line rather than once the corpus is on disk."""
    from .features.store import FeatureError

    store = registry.feature_store(None)
    try:
        requests = method.features(config)
    except ConfigError:
        raise
    except ValueError as exc:  # a check of the plugin's own
        raise ConfigError(f"{method.name}: {exc}") from None
    for stream, request in requests.items():
        try:
            extractor = store.lookup(request.extractor)
        except FeatureError as exc:  # an extractor name from the config
            raise ConfigError(f"{method.name}, stream {stream!r}: {exc}") from None
        try:
            extractor(**dict(request.params))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{method.name}, stream {stream!r}: feature extractor {request.extractor!r} rejects "
                              f"{dict(request.params)} ({exc}); see the features section of `mer config --plugin "
                              f"{method.name}`") from None


def check_method(method: Method, config: Mapping[str, Any], num_classes: int) -> None:
    """Build the method's input streams, trainer stages and model from ``config`` before any
    feature is computed, so a bad value in a plugin's own section (``model``, ``pretrain`` ...)
    or an encoder that breaks its contract stops the run in one line instead of failing every
    fold. A method that declares a ``config_class`` has its sections checked against it first.
    The model is built on the meta device: no memory, no weights."""
    import torch

    from .nn.base import ContractError, check_modules
    from .plugins import PluginError
    from .training.perturbation import perturbations

    try:
        if method.config_class() is not None:  # the method's sections, typed, checked once
            method.settings(config)
        streams = method.features(config)
        for stage in method.stages(config):
            for perturbation in perturbations(stage):
                perturbation.check_streams(streams)
        with torch.device("meta"):
            check_modules(method.build_model(config, num_classes), f"method {method.name!r}")
    except ConfigError:
        raise
    except ValueError as exc:  # a check of the plugin's own, e.g. sizes that do not fit together
        raise ConfigError(f"{method.name}: {exc}") from None
    except ContractError as exc:
        raise PluginError(str(exc)) from None


def default_profile(method: Method, dataset: str, profile: str | None, device: str | None = None) -> str:
    """The quick profile where the paper's setup cannot finish -- the built-in synthetic corpus and
    any run on a CPU -- and the paper's setup on a GPU; ``profile`` when one is asked for."""
    if profile:
        return profile
    if QUICK not in method.profiles():
        return "paper"
    from .training.device import resolve_device  # imports torch, which `mer --help` does not need

    on_cpu = device in (None, "auto", "cpu") and resolve_device(device or "auto").type == "cpu"
    return QUICK if dataset == "synthetic" or on_cpu else "paper"


def check_inputs(method: Method, dataset: str, registry: Registry) -> None:
    """Refuse, before anything is computed, a dataset whose input kind the method cannot read."""
    kind = registry.dataset(dataset).kind
    if kind in method.inputs:
        return
    usable = [n for n in registry.list("datasets") if registry.dataset(n).kind in method.inputs]
    needs = {"clips": "raw clips (onset and apex frames)", "flow-release": "a precomputed-flow release"}
    raise ConfigError(f"{method.name} needs {' or '.join(needs.get(k, k) for k in method.inputs)}, which dataset "
                      f"{dataset!r} ({kind}) does not provide; datasets it can use: {', '.join(usable)}")


def check_before_work(method: Method, config: dict[str, Any], registry: Registry, spec: RunSpec) -> Dataset:
    """Every check of a resolved config and the run's spec that needs no data, in the order
    ``mer run`` makes them before anything is read, generated or computed; returns the dataset."""
    core = check_run_options(config)
    ds = registry.dataset(spec.dataset)
    if ds.requires_root and spec.data_root is None:
        raise ConfigError(f"dataset {spec.dataset!r} needs --data-root (the folder holding the corpus as distributed)")
    labels = ds.label_set(spec.task)  # an unknown --task, refused before anything is read
    check_dataset_options(ds, core.data.options, spec.dataset_options)
    check_features(method, config, registry)
    check_method(method, config, labels.num_classes)
    return ds


def run_key(parts: Mapping[str, Any]) -> str:
    """Runs with the same method, config and sample keys share a folder, so a rerun resumes; each
    fold record says under which labels, inputs and versions it holds (:mod:`.evaluation.identity`).
    Settings that cannot change a prediction (:data:`.core_settings.INERT_SETTINGS`) are left out."""
    relevant = json.loads(json.dumps(parts, sort_keys=True, default=str))
    if "config" in relevant:
        relevant["config"] = prediction_settings(relevant["config"])
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def run_config(spec: RunSpec, registry: Registry, device: str | None = None) -> dict[str, Any]:
    """The config ``run`` would use (``mer config`` prints it): the default profile for the
    device, the sections for the dataset's input kind and name, the file, the overrides, then
    the spec's seed (an int, set as is) and the device."""
    method = registry.method(spec.method) if isinstance(spec.method, str) else spec.method
    check_inputs(method, spec.dataset, registry)
    ds = registry.dataset(spec.dataset)
    config = resolve_config(method, variant=spec.variant,
                            profile=default_profile(method, spec.dataset, spec.profile, device),
                            config_file=spec.config_file, sets=spec.overrides, inputs=ds.kind, dataset=spec.dataset,
                            aligned=ds.face_aligned)
    if spec.seed is not None:
        config["run"]["seed"] = spec.seed
    if device:
        config["run"]["device"] = device
    return config


@dataclass
class Prepared:
    """Everything a LOSO run (or a tune) needs before the first fold: the method, its resolved
    config, the checked samples and the identity (``key_parts``) its results folder is named by."""

    registry: Registry
    method: Method
    config: dict[str, Any]
    data: LoadedDataset
    dataset: str
    cache_dir: Path
    key_parts: dict[str, Any]
    #: the ``--config`` / ``--set`` changes as given (:meth:`RunSpec.given_overrides`), for the run's records
    overrides: list[str] = field(default_factory=list)

    @property
    def variant(self) -> str | None:
        return self.config["meta"]["variant"]

    @functools.cached_property
    def settings(self) -> CoreSettings:
        """The core sections of :attr:`config`, typed (checked by :func:`check_run_options` first)."""
        return CoreSettings.of(self.config)

    def folder(self, kind: str, extra: Mapping[str, Any] | None = None) -> Path:
        """``<cache>/<kind>/<method>-<dataset>-<key>``: the results folder of these settings."""
        key = run_key({**self.key_parts, **(extra or {})})
        return self.cache_dir / kind / f"{self.method.name}-{self.dataset}-{key}"

    def tags(self) -> dict[str, str]:
        return {"mer.method": self.method.name, "mer.variant": str(self.variant), "mer.dataset": self.dataset,
                "mer.task": self.data.task, "mer.profile": self.config["meta"]["profile"]}

    def title(self) -> str:
        return f"{self.method.name}{'-' + self.variant if self.variant else ''} {self.dataset} {self.data.task}"

    def software(self) -> tuple[dict[str, str], dict[str, str]]:
        """(every version recorded, the versions a fold's result depends on: mercore, the plugin)."""
        distribution = self.registry.distribution_of(self.method.name)
        environment = software_versions(distribution)
        return environment, {k: environment[k] for k in ("mercore", distribution) if k}


def resolve_method(method: str | Method, registry: Registry | None) -> tuple[Registry, Method]:
    if isinstance(method, str):
        return load_method(registry, method)
    return registry or load_registry(), method


def prepare(spec: RunSpec, options: ExecutionOptions = ExecutionOptions(), *, registry: Registry | None = None,
            on_skipped: Callable[[str], None] | None = None,
            notify: Callable[[str], None] | None = None) -> Prepared:
    """Resolve the config and read the samples, checking every option and the data before any
    work (the callbacks as :func:`run` describes them)."""
    registry, method = resolve_method(spec.method, registry)
    config = run_config(dataclasses.replace(spec, method=method), registry, options.device)
    ds = check_before_work(method, config, registry, spec)
    extra = {**CoreSettings.of(config).data.options, **spec.dataset_options}
    load = LoadOptions(task=spec.task, skip_invalid=spec.skip_invalid, cache_dir=options.cache_dir, extra=extra)
    root = spec.data_root.expanduser() if spec.data_root else None
    data = select_subjects(ds.load(root, load), spec.subjects)
    check_loso_subjects(data, spec.subjects)
    unlabelled = [s.key for s in data.samples if data.task not in s.labels]
    if unlabelled:
        raise ConfigError(f"{len(unlabelled)} samples have no {data.task} label (e.g. {unlabelled[0]}); dataset "
                          f"option all_emotions is for self-supervised pre-training, not for an evaluation run")
    if on_skipped is not None:
        for line in data.skipped:
            on_skipped(line)
    for notice in config["meta"].get("notices", []):
        (notify or log.warning)(notice)
    config["meta"].update({"dataset": spec.dataset, "task": data.task, "samples": len(data.samples),
                           "subjects": len(data.subjects)})
    key_parts = {"method": method.name, "dataset": spec.dataset, "root": str(spec.data_root), "task": data.task,
                 "samples": [s.key for s in data.samples], "config": config, "options": load.extra}
    return Prepared(registry, method, config, data, spec.dataset, options.cache_dir, key_parts,
                    spec.given_overrides())


def run(spec: RunSpec, options: ExecutionOptions = ExecutionOptions(), *, registry: Registry | None = None,
        run_name: str | None = None, on_skipped: Callable[[str], None] | None = None,
        on_start: Callable[[dict[str, Any]], None] | None = None,
        notify: Callable[[str], None] | None = None) -> RunResult:
    """Run a LOSO evaluation of ``spec`` as ``options`` say and return the pooled result.

    ``on_skipped`` hears each annotation row ``spec.skip_invalid`` left out, as soon as the data
    are read; the rows are also in ``RunResult.skipped``, ``summary.json`` and the MLflow run.
    ``on_start`` gets the resolved config once every option and the data have been checked,
    before any work. The config's ``data.options`` are dataset options under
    ``spec.dataset_options``. ``notify`` receives one-line notices about the setup (default: a
    logged warning), e.g. that faces go unaligned because dlib is not installed.
    """
    prep = prepare(spec, options, registry=registry, on_skipped=on_skipped, notify=notify)
    run_dir = prep.folder("runs")
    if options.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)  # the config up front, so `mer runs` can tell an unfinished run
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(prep.config, sort_keys=False))
    store = prep.registry.feature_store(prep.cache_dir)
    evaluator = LOSOEvaluator(store, run_dir, progress=options.progress, workers=options.workers,
                              executor=options.executor, address=options.address,
                              datasets=prep.registry.dataset_adapters())
    try:
        environment, software = prep.software()  # a new mercore or plugin version may change results
        evaluator.plan(prep.data, prep.config, software)  # what is recorded, for a stop from here on
        # the store is checked too, before any work
        tracker = make_tracker(options.tracking, options.tracking_uri, options.experiment)
        if on_start is not None:
            on_start(prep.config)
        try:
            with tracker.parent(run_name or prep.title(), prep.config, {**prep.tags(), "mer.run_dir": str(run_dir)},
                                environment, identity=str(run_dir)):
                result = evaluator.evaluate(prep.method, prep.data, prep.config, variant=prep.variant,
                                            software=software, on_fold=tracker.log_fold)
                result.mlflow_run_id = tracker.run_id
                result.environment = environment
                result.skipped = list(prep.data.skipped)
                result.overrides = prep.overrides
                artifacts = write_artifacts(result, run_dir / "artifacts")
                artifacts += write_report(result, run_dir / "artifacts")
                tracker.log_result(result, artifacts)
        except TrackingError as exc:  # the store failed mid-run (locked, a server gone): the folds are kept
            raise type(exc)(f"{exc}; {_kept(evaluator, run_dir)}") from None
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM under mercore.interrupt.stop_on_signals
        raise Interrupted(getattr(exc, "signum", signal.SIGINT), _kept(evaluator, run_dir)) from None
    return result


def _kept(evaluator: LOSOEvaluator, run_dir: Path) -> str:
    """What a run that stops short has recorded, and how to go on."""
    if not evaluator.total:
        return f"the folds recorded in {run_dir} are kept; the same command resumes from there"
    earlier = f" ({evaluator.earlier} from an earlier run)" if evaluator.earlier else ""
    return (f"{evaluator.finished} of {evaluator.total} folds are recorded{earlier} in {run_dir}; the same command "
            "resumes from there")


def seed_list(seeds: int | Sequence[int], base: int) -> list[int]:
    """``--seeds`` (checked by :class:`RunSpec`): a count N gives the N seeds from ``run.seed`` on;
    a list is taken as given."""
    return list(range(base, base + seeds)) if isinstance(seeds, int) else list(seeds)


def run_seeds(spec: RunSpec, options: ExecutionOptions = ExecutionOptions(), *, registry: Registry | None = None,
              run_name: str | None = None, on_skipped: Callable[[str], None] | None = None,
              on_start: Callable[[dict[str, Any]], None] | None = None,
              notify: Callable[[str], None] | None = None) -> SeedsResult:
    """The LOSO run of :func:`run` once per seed of ``spec.seeds``, aggregated (the callbacks as
    :func:`run` takes them, heard for the first seed's run).

    Each seed is an ordinary run, ``dataclasses.replace(spec, seed=N, seeds=None)``, so it has its
    own run folder keyed by its config and resumes per (seed, fold); the feature cache is shared.
    The aggregate (each seed's UF1/UAR with intervals, mean +- std, the interval of the seed mean)
    goes to a folder of its own and to an MLflow parent run holding the seeds' runs as children.
    """
    seeds = spec.seeds
    if seeds is None:
        raise ConfigError("--seeds: give a count such as 3 or a list such as 0,1,2")
    registry, method = resolve_method(spec.method, registry)
    spec = dataclasses.replace(spec, method=method)
    base = prepare(dataclasses.replace(spec, seeds=None), options, registry=registry)
    chosen = seed_list(seeds, base.settings.run.seed)
    tracker = make_tracker(options.tracking, options.tracking_uri, options.experiment)
    environment, _ = base.software()
    name = f"{run_name or base.title()} seeds {','.join(map(str, chosen))}"
    runs = []
    with tracker.parent(name, base.config, {**base.tags(), "mer.seeds": ",".join(map(str, chosen))}, environment,
                        identity=f"{base.folder('runs')} seeds {','.join(map(str, chosen))}"):
        for i, seed in enumerate(chosen):
            callbacks = {"on_start": on_start, "on_skipped": on_skipped, "notify": notify} if i == 0 else \
                {"notify": lambda line: None}
            runs.append(run(dataclasses.replace(spec, seed=seed, seeds=None), options, registry=registry,
                            run_name=f"{name}: seed {seed}", **callbacks))
        folder = base.folder("seeds", {"runs": [r.run_dir.name for r in runs]})
        result = SeedsResult(runs, folder, tracker.run_id)
        artifacts = write_seed_artifacts(result, folder)
        artifacts += write_report(result, folder / "artifacts")
        tracker.log_seeds(result, artifacts)
    return result
