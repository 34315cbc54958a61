"""``mer tune``: nested hyper-parameter search that never sees the test subject.

For every outer LOSO fold, Optuna (TPE sampler) searches the space; a trial is scored by a
subject-wise cross-validation over that fold's *training* subjects only (the pooled inner UF1).
The outer test subject is then predicted once, by a model fitted on all training subjects with
the chosen values. The pooled outer predictions are an honest estimate of "method + this tuning
procedure"; choosing values by the pooled test UF1 of full LOSO runs would not be.

Cost: outer folds x (trials x inner folds + 1) model fits. Each outer fold's study lives in one
SQLite file per tune folder (``optuna.db``), so a killed tune resumes without redoing finished
trials; finished outer folds are reused like the folds of ``mer run``.
"""
from __future__ import annotations

import functools
import json
import math
import shutil
import signal
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml
from tqdm.auto import tqdm

from .config import ConfigError, deep_merge, parse_set
from .data.dataset import LoadedDataset
from .evaluation.loso import LOSOEvaluator, auto_workers, usable_cores
from .evaluation.processes import run_in_processes
from .evaluation.results import FoldResult, RunResult
from .interrupt import Interrupted
from .io import atomic_write_text
from .plugins import Registry
from .protocols import Fold, loso_folds, subject_folds
from .reporting.html import write_report
from .reporting.artifacts import write_artifacts
from .runner import Prepared, prepare
from .spec import ExecutionOptions, RunSpec
from .tracking import make_tracker

TYPES = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}
#: the settings of inner fits that cannot change a score but cost time or disk
INNER_SETTINGS = {"run.checkpoints": False, "evaluation.leakage_audit": False}


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise RuntimeError("mer tune needs Optuna: pip install 'mercore[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# ------------------------------------------------------------------------------ search space
@dataclass(frozen=True)
class Param:
    """One searched config key: a float or int range (``log``, ``step``) or categorical choices."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            assert self.low is not None and self.high is not None  # a range has both (parse_space)
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_categorical(self.key, list(self.choices))

    @property
    def example(self) -> Any:
        """A value of the space, of the type a trial suggests (an int for an int range)."""
        if self.type == "categorical":
            return self.choices[0]
        if self.type == "int":
            assert self.low is not None  # a range has low and high (parse_space)
            return int(self.low)
        return self.low

    def spec(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        out = {"type": self.type, "low": self.low, "high": self.high, "log": self.log}
        return {**out, "step": self.step} if self.step is not None else out

    def summarise(self, values: Sequence[Any]) -> Any:
        """The value to write into a profile: the most-chosen choice, or the median of a number
        (geometric for a log scale: the chosen values are spread multiplicatively)."""
        if self.type == "categorical":
            counts = Counter(values)
            return max(self.choices, key=lambda c: (counts[c], -self.choices.index(c)))
        if self.log:
            middle = math.exp(statistics.median(math.log(v) for v in values))
        else:
            middle = statistics.median(values)
        return int(round(middle)) if self.type == "int" else float(middle)


def _number(where: str, spec: Mapping[str, Any], name: str) -> float:
    value = spec.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {name} must be a number, got {value!r}")
    return float(value)


def parse_space(data: Any, source: str = "search space") -> list[Param]:
    """Validate a search space (``key: {type: float|int|categorical, ...}``); clear errors otherwise."""
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{source}: expected a mapping of config keys to ranges, e.g. "
                          "train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}")
    params = []
    for key, spec in data.items():
        where = f"{source}: {key}"
        if not isinstance(spec, Mapping) or spec.get("type") not in TYPES:
            raise ConfigError(f"{where}: give a mapping with type float, int or categorical")
        kind = spec["type"]
        unknown = sorted(set(spec) - TYPES[kind] - {"type"})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} for type {kind}; "
                              f"allowed: {', '.join(sorted(TYPES[kind]))}")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            bad = [c for c in choices if c is not None and not isinstance(c, (str, int, float, bool))]
            if bad:
                raise ConfigError(f"{where}: choices must be scalars (str, number, bool, null), got {bad[0]!r}")
            if len(set(map(repr, choices))) != len(choices):
                raise ConfigError(f"{where}: choices repeat a value")
            params.append(Param(str(key), kind, choices=tuple(choices)))
            continue
        low, high = _number(where, spec, "low"), _number(where, spec, "high")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}: log must be true or false")
        if not low < high:
            raise ConfigError(f"{where}: low ({low:g}) must be below high ({high:g})")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log scale needs low > 0")
        step = _number(where, spec, "step") if "step" in spec else None
        if step is not None and (step <= 0 or log):
            raise ConfigError(f"{where}: step must be > 0 and cannot be combined with log")
        if kind == "int" and any(v != int(v) for v in (low, high, step or 1)):
            raise ConfigError(f"{where}: an int range needs whole-number low, high and step")
        params.append(Param(str(key), kind, low, high, log, step))
    return params


def load_space(path: Path | str) -> list[Param]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"search space file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"search space file {path} is not valid YAML: {exc}") from None
    return parse_space(data, f"search space {path}")


def with_values(config: Mapping[str, Any], values: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """``config`` with dotted ``values`` set, as ``--set`` would (unknown keys, sections named as
    values and values of another type are errors)."""
    return deep_merge(config, parse_set(f"{k}={json.dumps(v)}" for k, v in values.items()), strict=True,
                      origin=origin)


def check_space(config: Mapping[str, Any], params: Sequence[Param]) -> None:
    """Every searched key must exist in the method's config (checked before the first fit)."""
    with_values(config, {p.key: p.example for p in params}, " (in the search space)")


# ------------------------------------------------------------------------------ the search
@dataclass
class OuterChoice:
    """What the search chose for one outer fold."""

    index: int
    fold: str
    values: dict[str, Any]
    inner_uf1: float
    trials_complete: int
    trials_failed: int


@dataclass
class TuneResult:
    """The outer pooled result, the values chosen per outer fold and what tuning cost."""

    result: RunResult
    choices: list[OuterChoice]
    params: list[Param]
    trials: int
    inner_folds: int
    seconds: float
    tune_dir: Path
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def fits(self) -> int:
        return len(self.choices) * (self.trials * self.inner_folds + 1)


def startup_trials(trials: int) -> int:
    """Random trials before TPE models the results: half the budget (TPE's default of 10 would
    leave a small budget purely random)."""
    return max(1, trials // 2)


@dataclass
class _Job:
    """What a worker needs to tune one outer fold (picklable for fork, plain for in-process)."""

    prep: Prepared
    software: dict[str, str]
    params: list[Param]
    trials: int
    inner_folds: int
    tune_dir: Path
    storage: str


def _study(optuna: Any, job: _Job, fold: Fold) -> Any:
    storage = optuna.storages.RDBStorage(job.storage, engine_kwargs={"connect_args": {"timeout": 120}})
    sampler = optuna.samplers.TPESampler(seed=job.prep.settings.run.seed + fold.index,
                                         n_startup_trials=startup_trials(job.trials))
    return optuna.create_study(study_name=f"outer-{fold.index:03d}", storage=storage, sampler=sampler,
                               direction="maximize", load_if_exists=True)


def inner_data(data: LoadedDataset, fold: Fold) -> LoadedDataset:
    """The outer fold's training samples: the only data a trial may fit or score on."""
    samples = [data.samples[i] for i in fold.train]
    outer_test = {data.samples[i].group for i in fold.test}
    assert not {s.group for s in samples} & outer_test, "outer test subject in the inner data"
    return LoadedDataset(data.name, data.task, data.labels, samples, data.skipped)


def tune_outer_fold(job: _Job, fold: Fold) -> tuple[OuterChoice, FoldResult]:
    """Search, then fit on all training subjects with the chosen values and predict the test subject."""
    optuna = require_optuna()
    prep = job.prep
    study = _study(optuna, job, fold)
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)  # a killed run's trial: redone as a new one
    data = inner_data(prep.data, fold)
    seed = prep.settings.run.seed + fold.index
    folds = subject_folds([s.group for s in data.samples], job.inner_folds, seed)
    store = prep.registry.feature_store(prep.cache_dir)
    outer_dir = job.tune_dir / "outer" / f"{fold.index:03d}"
    datasets = prep.registry.dataset_adapters()

    def objective(trial: Any) -> float:
        values = {p.key: p.suggest(trial) for p in job.params}
        config = with_values(with_values(prep.config, values, " (in the search space)"), INNER_SETTINGS, "")
        evaluator = LOSOEvaluator(store, outer_dir / f"trial-{trial.number:04d}", progress=False, datasets=datasets)
        inner = evaluator.evaluate(prep.method, data, config, variant=prep.variant, software=job.software,
                                   folds=folds)
        scores = inner.scores()
        trial.set_user_attr("inner_uar", scores.uar)
        trial.set_user_attr("seconds", sum(f.seconds for f in inner.folds))
        return scores.uf1

    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if done < job.trials:
        study.optimize(objective, n_trials=job.trials - done)
    best = study.best_trial
    failed = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)))
    choice = OuterChoice(fold.index, fold.name, dict(best.params), float(best.value), job.trials, failed)
    # a final fit recorded under other values does not hold (its identity names the config): redone
    config = with_values(prep.config, choice.values, " (in the search space)")
    final = LOSOEvaluator(store, job.tune_dir, progress=False, datasets=datasets).evaluate(
        prep.method, prep.data, config, variant=prep.variant, software=job.software, folds=[fold])
    return choice, final.folds[0]


def run_outer_folds(job: _Job, folds: Sequence[Fold], workers: int,
                    finish: Callable[[OuterChoice, FoldResult], None]) -> None:
    """Outer folds one after another, or in ``workers`` forked processes (the cheapest way to use
    several cores: a fold's trials are sequential, the folds independent). Results come back to
    this process, which logs them; on any exit the processes are stopped. A stopped process's
    trial stays RUNNING in the study and is replaced when the tune resumes."""
    if workers <= 1 or len(folds) <= 1:
        for fold in folds:
            finish(*tune_outer_fold(job, fold))
        return
    run_in_processes(folds, functools.partial(tune_outer_fold, job), lambda payload: finish(*payload),
                     workers=workers, threads=max(1, usable_cores() // workers),
                     describe=lambda fold: f"tuning outer fold {fold.index} ({fold.name})",
                     method=job.prep.settings.run.start_method)


def tune(spec: RunSpec, options: ExecutionOptions = ExecutionOptions(), *, space: Path | str | Iterable[Param],
         trials: int, inner_folds: int = 3, registry: Registry | None = None,
         notify: Callable[[str], None] | None = None) -> TuneResult:
    """Nested tuning of ``spec`` (see the module docstring), prepared as :func:`prepare` does.

    ``options.workers`` processes tune outer folds in parallel (``"auto"``: as ``mer run``).
    """
    optuna = require_optuna()
    if trials < 1:
        raise ConfigError(f"--trials {trials}: give at least one trial")
    params = load_space(space) if isinstance(space, (str, Path)) else list(space)
    prep = prepare(spec, options, registry=registry, notify=notify)
    check_space(prep.config, params)
    groups = [s.group for s in prep.data.samples]
    outer = loso_folds(groups)
    smallest = min(len({groups[i] for i in f.train}) for f in outer)
    if not 2 <= inner_folds <= smallest:
        raise ConfigError(f"--inner-folds {inner_folds}: must be between 2 and the training subjects of an outer "
                          f"fold ({smallest})")
    tune_dir = prep.folder("tunes", {"space": [p.spec() | {"key": p.key} for p in params], "trials": trials,
                                     "inner_folds": inner_folds, "optuna": optuna.__version__.split(".")[0]})
    if options.fresh and tune_dir.exists():
        shutil.rmtree(tune_dir)
    tune_dir.mkdir(parents=True, exist_ok=True)
    environment, software = prep.software()
    job = _Job(prep, software, params, trials, inner_folds, tune_dir,
               f"sqlite:///{(tune_dir / 'optuna.db').resolve()}")
    optuna.storages.RDBStorage(job.storage).engine.dispose()  # tables created once, before workers open the file
    tracker = make_tracker(options.tracking, options.tracking_uri, options.experiment)
    tags = {**prep.tags(), "mer.run_dir": str(tune_dir), "mer.tune": f"{trials} trials, {inner_folds} inner folds"}
    start = time.perf_counter()
    workers = options.workers
    count = auto_workers(prep.settings.run.device, len(outer)) if workers == "auto" else workers
    try:
        with tracker.parent(f"tune {prep.title()}", prep.config, tags, environment):
            outcome = _tune_all(tracker, optuna, job, outer, int(count), options.progress, start, environment)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM under mercore.interrupt.stop_on_signals
        raise Interrupted(getattr(exc, "signum", signal.SIGINT),
                          f"finished trials and outer folds are kept in {tune_dir}; the same command resumes "
                          "from there") from None
    return outcome


def _tune_all(tracker: Any, optuna: Any, job: _Job, outer: Sequence[Fold], workers: int, progress: bool,
              start: float, environment: dict[str, str]) -> TuneResult:
    """Every outer fold, then the pooled outer result and its records (inside the parent run)."""
    prep, params, trials, inner_folds, tune_dir = job.prep, job.params, job.trials, job.inner_folds, job.tune_dir
    choices: dict[int, OuterChoice] = {}
    results: dict[int, FoldResult] = {}
    tracker.log_params({"tune.trials": trials, "tune.inner_folds": inner_folds,
                        "tune.space": json.dumps({p.key: p.spec() for p in params})})
    bar = tqdm(total=len(outer), desc=f"tune {prep.method.name}", unit="outer fold", disable=not progress)

    def finish(choice: OuterChoice, fold: FoldResult) -> None:
        choices[choice.index], results[choice.index] = choice, fold
        _log_outer(tracker, optuna, job, choice, fold)
        bar.update()

    run_outer_folds(job, outer, workers, finish)
    bar.close()
    config = {**prep.config, "tune": {"trials": trials, "inner_folds": inner_folds,
                                      "space": {p.key: p.spec() for p in params}}}
    result = RunResult(prep.method.name, prep.variant, prep.data.name, prep.data.task, prep.data.labels.classes,
                       config, [results[f.index] for f in outer], tune_dir, mlflow_run_id=tracker.run_id,
                       environment=environment, overrides=prep.overrides)
    ordered = [choices[f.index] for f in outer]
    outcome = TuneResult(result, ordered, params, trials, inner_folds, time.perf_counter() - start, tune_dir,
                         profile={p.key: p.summarise([c.values[p.key] for c in ordered]) for p in params})
    artifacts = write_artifacts(result, tune_dir / "artifacts")
    artifacts += write_report(result, tune_dir / "artifacts")
    artifacts.append(tune_dir / "artifacts" / "tune.json")
    atomic_write_text(artifacts[-1], json.dumps(tune_summary(outcome), indent=2))
    tracker.log_result(result, artifacts)
    return outcome


def _log_outer(tracker: Any, optuna: Any, job: _Job, choice: OuterChoice, fold: FoldResult) -> None:
    """One nested run per outer fold (chosen values, test accuracy) holding one per trial; read
    back from the study, so a resumed tune logs the trials an earlier process ran too."""
    if tracker.run_id is None:
        return
    study = optuna.load_study(study_name=f"outer-{choice.index:03d}", storage=job.storage)
    correct = sum(int(t == p) for t, p in zip(fold.y_true, fold.y_pred))
    with tracker.child(f"outer {choice.index:03d} {choice.fold}", {f"chosen.{k}": v for k, v in choice.values.items()},
                       {"mer.fold": choice.fold}):
        tracker.log_metrics({"inner_best_uf1": choice.inner_uf1, "test_acc": correct / max(len(fold.y_true), 1)})
        for trial in study.get_trials(deepcopy=False):
            with tracker.child(f"trial {trial.number}", trial.params, {"mer.trial_state": trial.state.name}):
                if trial.value is not None:
                    tracker.log_metrics({"inner_uf1": trial.value,
                                         **{k: v for k, v in trial.user_attrs.items() if isinstance(v, float)}})


def tune_summary(outcome: TuneResult) -> dict[str, Any]:
    """tune.json: the space, the choice per outer fold, the profile values and the cost."""
    return {
        "method": outcome.result.method, "variant": outcome.result.variant, "dataset": outcome.result.dataset,
        "task": outcome.result.task, "profile": outcome.result.config.get("meta", {}).get("profile"),
        "space": {p.key: p.spec() for p in outcome.params}, "trials": outcome.trials,
        "inner_folds": outcome.inner_folds, "sampler": f"TPE, {startup_trials(outcome.trials)} random start-up trials",
        "objective": "pooled UF1 of a subject-wise cross-validation on the outer fold's training subjects",
        "outer": [vars(c) for c in outcome.choices], "most_chosen": outcome.profile,
        "cost": {"outer_folds": len(outcome.choices), "fits": outcome.fits,
                 "formula": "outer folds x (trials x inner folds + 1)"},
        "seconds_this_invocation": outcome.seconds,
        "outer_result": {**outcome.result.scores().as_dict(),
                         **{f"{k}_ci": v.as_list() for k, v in outcome.result.intervals().items()}},
    }


def write_profile(outcome: TuneResult, path: Path | str) -> Path:
    """The most-chosen values as a config file (``mer run --config FILE``)."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".yaml")
    values = parse_set(f"{k}={json.dumps(v)}" for k, v in outcome.profile.items())
    r = outcome.result
    name = f"{r.method}{' (' + r.variant + ')' if r.variant else ''}"
    head = (f"# Written by mer tune: {name} on {r.dataset} [{r.task}], {outcome.trials} trials x\n"
            f"# {outcome.inner_folds} inner folds per outer fold; tune folder {outcome.tune_dir}.\n"
            "# Categorical values: the most chosen over the outer folds; numbers: the median (geometric on\n"
            "# log scales).\n"
            "# These values were chosen on this corpus's subjects: a LOSO run on the same corpus with them is\n"
            "# optimistic. The honest figure of the tuned method is the tune's outer result.\n")
    atomic_write_text(path, head + yaml.safe_dump(values, sort_keys=False))
    return path
