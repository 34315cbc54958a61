"""``mer run`` as a function: plugin -> dataset -> config -> LOSO -> metrics -> MLflow."""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

from .config import ConfigError, resolve_config, validate_config
from .data.dataset import Dataset, LoadedDataset, LoadOptions
from .environment import software_versions
from .evaluation.loso import LOSOEvaluator, check_workers
from .evaluation.results import RunResult, SeedsResult
from .evaluation.settings import EvaluationSettings
from .interfaces import Method
from .interrupt import Interrupted
from .io import atomic_write_text
from .plugins import Registry, load_registry
from .reporting.html import write_report
from .reporting.artifacts import write_artifacts, write_seed_artifacts
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


def check_run_options(config: dict[str, Any], workers: int | str) -> None:
    """Everything the run will read, checked before any data are read (one line each, exit 2)."""
    from .training.device import resolve_device

    validate_config(config)
    EvaluationSettings.from_config(config["evaluation"])
    try:
        check_workers(workers)
        resolve_device(config["run"]["device"])
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(str(exc)) from None


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
    fold. The model is built on the meta device: no memory, no weights."""
    import torch

    from .nn.base import ContractError, check_modules
    from .plugins import PluginError
    from .training.perturbation import perturbations

    try:
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


def check_before_work(method: Method, config: dict[str, Any], registry: Registry, *, dataset: str,
                      task: str | None = None, data_root: Path | str | None = None,
                      dataset_options: Mapping[str, Any] | None = None, workers: int | str = 0) -> Dataset:
    """Every check of a resolved config and the run's options that needs no data, in the order
    ``mer run`` makes them before anything is read, generated or computed; returns the dataset."""
    check_run_options(config, workers)
    ds = registry.dataset(dataset)
    if ds.requires_root and data_root is None:
        raise ConfigError(f"dataset {dataset!r} needs --data-root (the folder holding the corpus as distributed)")
    labels = ds.label_set(task)  # an unknown --task, refused before anything is read
    check_dataset_options(ds, config["data"].get("options") or {}, dataset_options or {})
    check_features(method, config, registry)
    check_method(method, config, labels.num_classes)
    return ds


def run_key(parts: Mapping[str, Any]) -> str:
    """Runs with the same method, config and sample keys share a folder, so a rerun resumes; each
    fold record says under which labels, inputs and versions it holds (:mod:`.evaluation.identity`).
    Settings that cannot change a prediction (feature workers, start method, how intervals are computed) are left out."""
    relevant = json.loads(json.dumps(parts, sort_keys=True, default=str))
    relevant.get("config", {}).get("run", {}).pop("feature_workers", None)
    relevant.get("config", {}).get("run", {}).pop("start_method", None)
    relevant.get("config", {}).get("evaluation", {}).pop("bootstrap", None)
    relevant.get("config", {}).get("evaluation", {}).pop("interval", None)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def override_items(overrides: Iterable[str] | Mapping[str, Any]) -> list[str]:
    """``key=value`` strings (as ``--set`` takes them) from strings or a flat ``{"train.lr": 0.01}`` mapping."""
    return [f"{k}={json.dumps(v)}" for k, v in overrides.items()] if isinstance(overrides, Mapping) else list(overrides)


def given_overrides(overrides: Iterable[str] | Mapping[str, Any] = (),
                    config_file: Path | str | None = None) -> list[str]:
    """What a run changed of its profile's config, in the CLI's words (``--config PATH``, ``--set
    KEY=VALUE``), for summary.json and the reports: a 3-epoch run must not read as a plain quick run."""
    sets = override_items(overrides)
    return ([f"--config {config_file}"] if config_file else []) + [f"--set {item}" for item in sets]


def run_config(method: Method, registry: Registry, *, dataset: str = "synthetic", variant: str | None = None,
               profile: str | None = None, config_file: Path | str | None = None,
               overrides: Iterable[str] | Mapping[str, Any] = (), device: str | None = None) -> dict[str, Any]:
    """The config ``run`` would use (``mer config`` prints it): the default profile for the
    device, the sections for the dataset's input kind and name, the file and the overrides."""
    sets = override_items(overrides)
    if device:
        sets.append(f"run.device={device}")
    check_inputs(method, dataset, registry)
    ds = registry.dataset(dataset)
    return resolve_config(method, variant=variant, profile=default_profile(method, dataset, profile, device),
                          config_file=config_file, sets=sets, inputs=ds.kind, dataset=dataset, aligned=ds.face_aligned)


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
    #: the ``--config`` / ``--set`` changes as given (:func:`given_overrides`), for the run's records
    overrides: list[str] = field(default_factory=list)

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

    def software(self) -> tuple[dict[str, str], dict[str, str]]:
        """(every version recorded, the versions a fold's result depends on: mercore, the plugin)."""
        distribution = self.registry.distribution_of(self.method.name)
        environment = software_versions(distribution)
        return environment, {k: environment[k] for k in ("mercore", distribution) if k}


def resolve_method(method: str | Method, registry: Registry | None) -> tuple[Registry, Method]:
    if isinstance(method, str):
        return load_method(registry, method)
    return registry or load_registry(), method


def prepare(method: str | Method, *, dataset: str = "synthetic", variant: str | None = None, task: str | None = None,
            data_root: Path | str | None = None, config_file: Path | str | None = None,
            overrides: Iterable[str] | Mapping[str, Any] = (), profile: str | None = None,
            subjects: Sequence[str] | None = None, device: str | None = None, cache_dir: Path | str = ".mer",
            skip_invalid: bool = False, dataset_options: Mapping[str, Any] | None = None,
            registry: Registry | None = None, workers: int | str = 0,
            on_skipped: Callable[[str], None] | None = None,
            notify: Callable[[str], None] | None = None) -> Prepared:
    """Resolve the config and read the samples, checking every option and the data before any
    work (the callbacks as :func:`run` describes them)."""
    registry, method_obj = resolve_method(method, registry)
    config = run_config(method_obj, registry, dataset=dataset, variant=variant, profile=profile,
                        config_file=config_file, overrides=overrides, device=device)
    ds = check_before_work(method_obj, config, registry, dataset=dataset, task=task, data_root=data_root,
                           dataset_options=dataset_options, workers=workers)
    cache_dir = Path(cache_dir)
    extra = {**dict(config["data"].get("options") or {}), **dict(dataset_options or {})}
    options = LoadOptions(task=task, skip_invalid=skip_invalid, cache_dir=cache_dir, extra=extra)
    data = select_subjects(ds.load(Path(data_root).expanduser() if data_root else None, options), subjects)
    check_loso_subjects(data, subjects)
    unlabelled = [s.key for s in data.samples if data.task not in s.labels]
    if unlabelled:
        raise ConfigError(f"{len(unlabelled)} samples have no {data.task} label (e.g. {unlabelled[0]}); dataset "
                          f"option all_emotions is for self-supervised pre-training, not for an evaluation run")
    for line in data.skipped if on_skipped else ():
        on_skipped(line)
    for notice in config["meta"].get("notices", []):
        (notify or log.warning)(notice)
    config["meta"].update({"dataset": dataset, "task": data.task, "samples": len(data.samples),
                           "subjects": len(data.subjects)})
    key_parts = {"method": method_obj.name, "dataset": dataset, "root": str(data_root), "task": data.task,
                 "samples": [s.key for s in data.samples], "config": config, "options": options.extra}
    return Prepared(registry, method_obj, config, data, dataset, cache_dir, key_parts,
                    given_overrides(overrides, config_file))


def run(method: str | Method, *, dataset: str = "synthetic", variant: str | None = None, task: str | None = None,
        data_root: Path | str | None = None, config_file: Path | str | None = None,
        overrides: Iterable[str] | Mapping[str, Any] = (), profile: str | None = None,
        subjects: Sequence[str] | None = None, device: str | None = None, tracking: bool = True,
        tracking_uri: str | None = None, experiment: str = "mer", cache_dir: Path | str = ".mer",
        skip_invalid: bool = False, dataset_options: Mapping[str, Any] | None = None, fresh: bool = False,
        progress: bool = True, registry: Registry | None = None, run_name: str | None = None,
        workers: int | str = 0, executor: str = "local", address: str | None = None,
        on_skipped: Callable[[str], None] | None = None,
        on_start: Callable[[dict[str, Any]], None] | None = None,
        notify: Callable[[str], None] | None = None) -> RunResult:
    """Run a LOSO evaluation of ``method`` and return the pooled result.

    ``overrides`` are ``key=value`` strings (as ``--set``) or a flat ``{"train.lr": 0.01}`` mapping.
    ``workers`` > 1 runs folds in that many processes (sequential results up to thread-count
    rounding); ``"auto"``, the CLI's default, is one per CPU core (at most 4) on CPU and none on
    a GPU. ``executor="ray"`` ships folds as Ray tasks to a local or remote (``address``) cluster.
    ``on_skipped`` hears each annotation row ``skip_invalid`` left out, as soon as the data are read;
    the rows are also in ``RunResult.skipped``, ``summary.json`` and the MLflow run. ``on_start``
    gets the resolved config once every option and the data have been checked, before any work.
    The config's ``data.options`` are dataset options under ``dataset_options``. ``notify``
    receives one-line notices about the setup (default: a logged warning), e.g. that faces go
    unaligned because dlib is not installed.
    """
    prep = prepare(method, dataset=dataset, variant=variant, task=task, data_root=data_root, config_file=config_file,
                   overrides=overrides, profile=profile, subjects=subjects, device=device, cache_dir=cache_dir,
                   skip_invalid=skip_invalid, dataset_options=dataset_options, registry=registry, workers=workers,
                   on_skipped=on_skipped, notify=notify)
    run_dir = prep.folder("runs")
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)  # the config up front, so `mer runs` can tell an unfinished run
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(prep.config, sort_keys=False))
    store = prep.registry.feature_store(prep.cache_dir)
    evaluator = LOSOEvaluator(store, run_dir, progress=progress, workers=workers, executor=executor, address=address)
    try:
        environment, software = prep.software()  # a new mercore or plugin version may change results
        evaluator.plan(prep.data, prep.config, software)  # what is recorded, for a stop from here on
        tracker = make_tracker(tracking, tracking_uri, experiment)  # the store is checked too, before any work
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
    """``--seeds``: a count N gives the N seeds from ``run.seed`` on; a list is taken as given."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: give a count >= 1 or a list such as 0,1,2")
        return list(range(base, base + seeds))
    out = [int(s) for s in seeds]
    if not out:
        raise ConfigError("--seeds: the list of seeds is empty; give a count such as 3 or a list such as 0,1,2")
    if len(set(out)) != len(out):
        raise ConfigError(f"--seeds {','.join(map(str, out))}: give distinct seeds")
    return out


def run_seeds(method: str | Method, seeds: int | Sequence[int], *, overrides: Iterable[str] | Mapping[str, Any] = (),
              tracking: bool = True, tracking_uri: str | None = None, experiment: str = "mer",
              registry: Registry | None = None, **kwargs: Any) -> SeedsResult:
    """The LOSO run of :func:`run` once per seed, aggregated (``kwargs`` as :func:`run` takes them).

    Each seed is an ordinary run (``run.seed`` set), so it has its own run folder keyed by its
    config and resumes per (seed, fold); the feature cache is shared. The aggregate (each seed's
    UF1/UAR with intervals, mean +- std, the interval of the seed mean) goes to a folder of its
    own and to an MLflow parent run holding the seeds' runs as children.
    """
    registry, method_obj = resolve_method(method, registry)
    sets = override_items(overrides)
    base = prepare(method_obj, overrides=sets, registry=registry, **_prepare_kwargs(kwargs))
    chosen = seed_list(seeds, int(base.config["run"]["seed"]))
    tracker = make_tracker(tracking, tracking_uri, experiment)
    environment, _ = base.software()
    name = f"{kwargs.get('run_name') or base.title()} seeds {','.join(map(str, chosen))}"
    runs = []
    with tracker.parent(name, base.config, {**base.tags(), "mer.seeds": ",".join(map(str, chosen))}, environment,
                        identity=f"{base.folder('runs')} seeds {','.join(map(str, chosen))}"):
        for i, s in enumerate(chosen):
            quiet = {"on_start": None, "on_skipped": None, "notify": lambda line: None} if i else {}
            runs.append(run(method_obj, overrides=[*sets, f"run.seed={s}"], tracking=tracking,
                            tracking_uri=tracking_uri, experiment=experiment, registry=registry,
                            **{**kwargs, **quiet, "run_name": f"{name}: seed {s}"}))
        folder = base.folder("seeds", {"runs": [r.run_dir.name for r in runs]})
        result = SeedsResult(runs, folder, tracker.run_id)
        artifacts = write_seed_artifacts(result, folder)
        artifacts += write_report(result, folder / "artifacts")
        tracker.log_seeds(result, artifacts)
    return result


def _prepare_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of :func:`run` that :func:`prepare` takes too, without its callbacks (the
    seeds' runs call them)."""
    names = ("dataset", "variant", "task", "data_root", "config_file", "profile", "subjects", "device", "cache_dir",
             "skip_invalid", "dataset_options", "workers")
    return {k: v for k, v in kwargs.items() if k in names}
