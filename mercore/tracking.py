"""MLflow tracking: one parent run per ``mer run``, one nested run per fold; ``--seeds`` puts the
seeds' runs under a parent of their own, ``mer tune`` its outer folds and their trials.

A parent run mirrors its run folder: a rerun with the same identity (the folder), name, parent and
params resumes the earlier parent run (tag ``mer.reruns`` counts the reruns) rather than adding
another of the same name; a fold reused from the folder keeps its nested run, and a recomputed
fold's earlier nested run is tagged ``mer.superseded_by``. Other params (another mercore or
plugin version, another feature-worker count) start a new parent run.

MLflow is imported lazily (it costs seconds), and all logging happens in the main process from
finished fold results, so parallel or resumed folds produce the same record. A run stopped by
Ctrl-C or SIGTERM ends its MLflow runs as KILLED; runs left RUNNING by a process that can no
longer say so (SIGKILL, power loss) are marked KILLED by the next run of the same run folder.

An SQLite store is created once, under a file lock, in a temporary file renamed into place when
MLflow has finished its schema: two first runs at once cannot race (MLflow's migrations are not
safe against that), and a creation killed half-way leaves no store that every later run trips on.
The set-up runs with signals deferred (:func:`.interrupt.deferred_signals`), as every write does.

A store that fails -- locked by another process, a tracking server that does not answer, a schema
MLflow rejects -- is one line naming it and what to do (:class:`TrackingError`); a run the store
failed under is ended as FAILED if the store lets it, else left to the next run of its folder.
Requests to a tracking server time out (:data:`HTTP_TIMEOUT_S`; MLflow's defaults let a server that
never answers hang a run for good), and the first one is tried once.
"""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator, Mapping

from .config import ConfigError, flatten
from .evaluation.results import FoldResult, RunResult, SeedsResult
from .interrupt import deferred_signals, process_alive

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: seconds each request to a tracking server waits to connect, and again for a reply; the retries
#: of a request during a run (MLflow's environment variables of these names win when set)
HTTP_TIMEOUT_S = 15
HTTP_RETRIES = 2
#: seconds a look at an SQLite store waits for a lock another process holds (MLflow's own wait: 20)
LOCK_WAIT_S = 20.0
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")  # the stores `mlflow db upgrade` migrates
log = logging.getLogger(__name__)


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says why and what to do."""


class TrackingUriError(TrackingError, ConfigError):
    """``--tracking-uri`` names no kind of store MLflow knows: bad input, not a broken store."""


def resolved_uri(uri: str | None) -> str:
    """The store MLflow would use: ``uri``, else ``$MLFLOW_TRACKING_URI``, else ours."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def limit_http_requests() -> int:
    """Bound each request MLflow makes to a tracking server (it reads these variables per
    request) unless they are set already; returns the timeout in effect, in seconds."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(HTTP_TIMEOUT_S))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(HTTP_RETRIES))
    return int(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"])


@contextlib.contextmanager
def _tried_once() -> Iterator[None]:
    """MLflow's requests in the block are not retried: a server that does not answer the first
    one is reported after one timeout, not after minutes of retries."""
    before = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        else:
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = before


def _locked(uri: str) -> TrackingError:
    return TrackingError(f"MLflow store {uri} is locked: another process holds it (a run, `mlflow ui` or a server "
                         "using the same store, or one that hangs); let it finish or stop it, then run again")


def store_error(uri: str, exc: BaseException, setting_up: bool = False) -> TrackingError:
    """One line for MLflow failing on the store ``uri``: locked, a server that does not answer, a
    kind of store MLflow does not know (:class:`TrackingUriError`), else the first line of MLflow's message -- with the advice to upgrade the schema only for a
    database store while it is set up."""
    text = " ".join(str(e) for e in _chain(exc))
    if re.search(r"database (table )?is locked", text):
        return _locked(uri)
    if re.search(r"unsupported URI|Unexpected URI scheme", text):
        return TrackingUriError(f"--tracking-uri {uri}: MLflow knows no store of this kind; give sqlite:///FILE, "
                                "http(s)://HOST:PORT or a database URL, or run with --no-tracking")
    if _http(uri):
        why = next((why for pattern, why in (("refused", "connection refused"), ("Failed to resolve", "unknown host"),
                                             ("timed out", "no reply in time"),
                                             ("RemoteDisconnected|reset by peer", "connection closed"))
                    if re.search(pattern, text)), None)
        if why:
            timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", HTTP_TIMEOUT_S)
            return TrackingError(f"MLflow tracking server {uri} does not answer ({why}; each request waits {timeout} s "
                                 "to connect and as long for a reply, MLFLOW_HTTP_REQUEST_TIMEOUT): start the server "
                                 "or fix --tracking-uri, or run with --no-tracking")
    first = (str(exc).strip() or type(exc).__name__).splitlines()[0].split(". ")[0][:300]
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if ":" in uri else ""
    if setting_up and scheme in DATABASE_SCHEMES:
        return TrackingError(f"MLflow store {uri} cannot be used: {first} (from an older MLflow? back it up and run: "
                             f"mlflow db upgrade {uri})")
    return TrackingError(f"MLflow store {uri} cannot be used: {first}; check --tracking-uri, or run with --no-tracking")


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def sqlite_path(uri: str) -> Path | None:
    """The database file of an ``sqlite:///`` URI (relative or ``sqlite:////absolute``), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def store_file(uri: str) -> Path | None:
    """Where a local store lives: the file of an SQLite store, the folder of a ``file:`` one."""
    if uri.startswith("file:"):
        return Path(urllib.parse.urlparse(uri).path)
    return sqlite_path(uri)


def find_run(run_id: str, uri: str | None = None) -> Any:
    """The MLflow run ``run_id`` in the store ``uri`` (default: :func:`resolved_uri`), or None
    when the store holds no such run or does not exist: looking creates no store. A store that
    fails is a :class:`TrackingError`."""
    uri = resolved_uri(uri)
    local = store_file(uri)
    if local is not None and not local.exists():
        return None
    if _http(uri):
        limit_http_requests()
    import mlflow
    from mlflow.exceptions import MlflowException

    _quiet_store_errors()
    try:
        with _tried_once():
            return mlflow.tracking.MlflowClient(uri).get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise store_error(uri, exc) from exc


@contextlib.contextmanager
def store_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``.<db>.lock`` beside the database (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock = path.parent / f".{path.name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a")
    except OSError as exc:
        raise TrackingError(f"MLflow store {path}: cannot create its lock file {lock} ({exc.strerror}); pass a "
                            "--tracking-uri in a folder you can write, or run with --no-tracking") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _finished_store(path: Path) -> bool:
    """Whether MLflow finished creating the store at ``path``: it writes the default experiment
    only after the whole schema, so a store without any experiment is half-created (and empty)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                                                timeout=LOCK_WAIT_S)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            return "experiments" in tables and db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0] > 0
    except sqlite3.OperationalError as exc:  # a store another process holds, or one this user cannot read
        if "locked" in str(exc):
            raise _locked(f"sqlite:///{path}") from None
        raise TrackingError(f"MLflow store {path} cannot be read ({exc}); check its permissions or pass another "
                            "--tracking-uri") from None
    except sqlite3.DatabaseError as exc:
        raise TrackingError(f"{path} is not an MLflow store ({exc}); move it away or pass another "
                            "--tracking-uri") from None


def prepare_sqlite_store(path: Path) -> None:
    """Make ``path`` a finished MLflow store; call it holding :func:`store_lock`.

    A missing store is created in ``.<db>.creating-<pid>`` and renamed into place. A half-created
    one (holding nothing, see :func:`_finished_store`) is moved aside and created anew.
    """
    for stale in path.parent.glob(f".{path.name}.creating-*"):  # a creation killed before its rename
        stale.unlink(missing_ok=True)
    if path.exists() and path.stat().st_size > 0:
        if _finished_store(path):
            return
        aside = path.with_name(f"{path.name}.incomplete-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        log.warning("%s was a half-created MLflow store (its creation was interrupted; it held no runs): "
                    "moved it to %s and created a new one", path, aside.name)
    from mlflow.tracking import MlflowClient

    tmp = path.parent / f".{path.name}.creating-{os.getpid()}"
    try:
        MlflowClient(f"sqlite:///{tmp.absolute()}").search_experiments()  # schema + default experiment
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Tracker:
    """No-op tracker (``--no-tracking``); the MLflow one overrides every method."""

    run_id: str | None = None

    @contextlib.contextmanager
    def parent(self, name: str, config: Mapping[str, Any], tags: Mapping[str, str],
               environment: Mapping[str, str] | None = None, identity: str | None = None) -> Iterator["Tracker"]:
        yield self

    def log_fold(self, fold: FoldResult, reused: bool) -> None:
        pass

    def log_result(self, result: RunResult, artifacts: list[Path]) -> None:
        pass

    def log_seeds(self, result: SeedsResult, artifacts: list[Path]) -> None:
        pass

    @contextlib.contextmanager
    def child(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> Iterator["Tracker"]:
        """A run nested in the active one (``mer tune``: an outer fold, a trial)."""
        yield self

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        pass

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass


class MlflowTracker(Tracker):
    def __init__(self, uri: str | None = None, experiment: str = "mer") -> None:
        self.uri = resolved_uri(uri)
        with deferred_signals():  # a signal raised in SQLAlchemy's set-up code can be lost (see mercore.interrupt)
            self.mlflow = self._set_up(experiment)
        from mlflow.exceptions import MlflowException

        self._failures = MlflowException  # what MLflow raises for a store that fails
        self.experiment = experiment
        self.run_id = None
        self._folds: dict[str, str] = {}  # fold -> nested run already in a resumed parent

    def _set_up(self, experiment: str) -> Any:
        """Import MLflow, check (or create) the store and the experiment; returns the mlflow module."""
        import mlflow

        _quiet_store_errors()
        path = sqlite_path(self.uri)
        if _http(self.uri):
            limit_http_requests()
        with store_lock(path) if path else contextlib.nullcontext():
            if path:
                prepare_sqlite_store(path)
            mlflow.set_tracking_uri(self.uri)
            try:
                with _tried_once():
                    mlflow.set_experiment(experiment)  # under the lock: two first runs create it once
            except Exception as exc:  # MLflow raises database, schema and connection errors alike
                raise store_error(self.uri, exc, setting_up=True) from exc
        return mlflow

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write (or look-up) of the store: a signal waits for it (see mercore.interrupt), and
        the store failing is one line (:func:`store_error`)."""
        with deferred_signals():
            try:
                yield
            except self._failures as exc:
                raise store_error(self.uri, exc) from exc

    @contextlib.contextmanager
    def parent(self, name: str, config: Mapping[str, Any], tags: Mapping[str, str],
               environment: Mapping[str, str] | None = None, identity: str | None = None) -> Iterator["Tracker"]:
        """A parent run with the config and the software versions (``env.<name>``) as params; with
        ``identity``, the earlier parent run of the same identity, name and params is resumed."""
        import torch

        env_tags = {"mer.torch": torch.__version__, "mer.python": platform.python_version(),
                    "mer.host": platform.node(), "mer.pid": str(os.getpid())}
        if torch.cuda.is_available():
            env_tags.update({"mer.cuda": str(torch.version.cuda), "mer.gpu": torch.cuda.get_device_name(0)})
        self._close_orphans(tags.get("mer.run_dir"))
        nested = self.mlflow.active_run() is not None  # a seed's run inside `--seeds`
        params = {k: str(v)[:6000] for k, v in flatten(config).items()}
        params.update({f"env.{k}": v for k, v in (environment or {}).items()})
        tags = {**env_tags, **tags, **({"mer.identity": identity} if identity else {})}
        with self._write():
            earlier = self._earlier_parent(identity, name, params, nested) if identity else None
        self._folds = {}
        if earlier is None:
            active = self._start(params, run_name=name, tags=tags, nested=nested,
                                 log_system_metrics=_system_metrics(config))
        else:  # the same params are logged already (MLflow refuses to change one)
            with self._write():
                self._folds = self._fold_runs(earlier.info.run_id)
            reruns = int(earlier.data.tags.get("mer.reruns", "0")) + 1
            active = self._start({}, run_id=earlier.info.run_id, tags={**tags, "mer.reruns": str(reruns)},
                                 nested=nested, log_system_metrics=_system_metrics(config))
        self.run_id = active.info.run_id
        with self._ended(active.info.run_id, children=True):
            yield self

    def _earlier_parent(self, identity: str, name: str, params: Mapping[str, str], nested: bool) -> Any:
        """The latest finished, killed or failed parent run of ``identity`` with this name, parent
        run and params (None: none, or an identity a filter string cannot quote)."""
        experiment = self.mlflow.get_experiment_by_name(self.experiment)
        if experiment is None or "'" in identity:
            return None
        parent = self.mlflow.active_run().info.run_id if nested else None
        client = self.mlflow.tracking.MlflowClient()
        for r in client.search_runs([experiment.experiment_id], f"tags.`mer.identity` = '{identity}' and "
                                    "attributes.status != 'RUNNING'", order_by=["attributes.start_time DESC"],
                                    max_results=50):
            if (r.info.run_name == name and r.data.tags.get("mlflow.parentRunId") == parent
                    and r.data.params == dict(params)):
                return r
        return None

    def _fold_runs(self, parent_id: str) -> dict[str, str]:
        """Fold -> the current nested run of each fold in ``parent_id`` (superseded ones left out)."""
        client = self.mlflow.tracking.MlflowClient()
        experiment = client.get_run(parent_id).info.experiment_id
        return {r.data.tags["mer.fold"]: r.info.run_id
                for r in client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}'",
                                            order_by=["attributes.start_time ASC"], max_results=5000)
                if "mer.fold" in r.data.tags and "mer.superseded_by" not in r.data.tags}

    def _start(self, params: Mapping[str, str], **start: Any) -> Any:
        """``mlflow.start_run(**start)`` and its params, as one write that a signal does not cut
        in half; a signal that arrived meanwhile ends the new run as KILLED, then stops the caller,
        and the store failing ends it as FAILED (as far as the store lets it)."""
        active = None
        try:
            with self._write():
                active = self.mlflow.start_run(**start)
                items = list(params.items())
                for i in range(0, len(items), 100):  # MLflow caps a batch at 100 params
                    self.mlflow.log_params(dict(items[i:i + 100]))
        except BaseException as exc:
            if active is not None:
                self._end_to(active.info.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        return active

    @contextlib.contextmanager
    def _ended(self, run_id: str, children: bool) -> Iterator[None]:
        """Ends the active run ``run_id`` when the block does: FINISHED, KILLED on a signal (with
        its ``children`` still RUNNING, :meth:`_killed_on_interrupt`), FAILED on an error -- also
        a fold's run that an error left open inside it."""
        try:
            with self._killed_on_interrupt(run_id if children else None):
                yield
        except KeyboardInterrupt:
            raise
        except BaseException:
            self._end_to(run_id, "FAILED")
            raise
        with self._write():
            self.mlflow.end_run("FINISHED")

    def _end_to(self, run_id: str | None, status: str) -> None:
        """End the active runs from the innermost one to ``run_id`` (None: all) after an error or a
        signal. A store that fails again leaves a run RUNNING rather than hide what went wrong: the
        next run of the same folder marks it KILLED (:meth:`_close_orphans`)."""
        while (active := self.mlflow.active_run()) is not None:
            with contextlib.suppress(self._failures), deferred_signals():
                self.mlflow.end_run(status)  # takes the run off MLflow's stack first
            if active.info.run_id == run_id:
                return

    @contextlib.contextmanager
    def _killed_on_interrupt(self, parent_id: str | None = None) -> Iterator[None]:
        """A Ctrl-C or SIGTERM (KeyboardInterrupt) ends every active run as KILLED, not FAILED.

        With ``parent_id``, so do its children still RUNNING: a signal that lands inside MLflow's
        ``start_run`` or ``end_run`` of a fold's run leaves that run unknown to the active stack.
        A store that fails meanwhile leaves them to the next run (:meth:`_end_to`).
        """
        try:
            yield
        except KeyboardInterrupt:
            self._end_to(None, "KILLED")
            if parent_id is not None:
                with contextlib.suppress(self._failures), deferred_signals():
                    client = self.mlflow.tracking.MlflowClient()
                    experiment = client.get_run(parent_id).info.experiment_id
                    for r in client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}' "
                                                "and attributes.status = 'RUNNING'", max_results=5000):
                        client.set_terminated(r.info.run_id, "KILLED")
            raise

    def _close_orphans(self, run_dir: str | None) -> None:
        """Mark KILLED the runs of ``run_dir`` that a process of this host left RUNNING when it died."""
        with self._write():
            self._close_orphans_now(run_dir)

    def _close_orphans_now(self, run_dir: str | None) -> None:
        experiment = self.mlflow.get_experiment_by_name(self.experiment)
        if run_dir is None or experiment is None:
            return
        client = self.mlflow.tracking.MlflowClient()
        running = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=5000)
        dead = {r.info.run_id for r in running if r.data.tags.get("mer.run_dir") == run_dir
                and r.data.tags.get("mer.host") == platform.node() and _dead(r.data.tags.get("mer.pid"))}
        for r in running:
            if r.info.run_id in dead or r.data.tags.get("mlflow.parentRunId") in dead:
                client.set_terminated(r.info.run_id, "KILLED")

    def log_fold(self, fold: FoldResult, reused: bool) -> None:
        from mlflow.entities import Metric

        from .metrics import scores

        earlier = self._folds.get(fold.fold)
        if reused and earlier is not None:  # a resumed parent holds this fold's run already
            return
        with self._write():  # a run the store fails in is left open, for the parent's end (_ended)
            run = self.mlflow.start_run(run_name=f"fold {fold.index:03d} {fold.fold}", nested=True,
                                        tags={"mer.fold": fold.fold, "mer.reused": str(reused)})
            if earlier is not None:
                self.mlflow.tracking.MlflowClient().set_tag(earlier, "mer.superseded_by", run.info.run_id)
            self.mlflow.log_params({"test_subject": fold.fold, "n_train": fold.n_train, "n_val": fold.n_val,
                                    "n_test": len(fold.keys)})
            client = self.mlflow.tracking.MlflowClient()
            history = [Metric(k.replace("/", "."), v, 0, s) for k, v, s in fold.history]
            for i in range(0, len(history), 1000):
                client.log_batch(run.info.run_id, metrics=history[i:i + 1000])
            n_classes = max([*fold.y_true, *fold.y_pred, 0]) + 1
            fold_scores = scores(fold.y_true, fold.y_pred, n_classes)
            self.mlflow.log_metrics({"test_acc": fold_scores.acc, "seconds": fold.seconds})
            if fold.peak_gpu_memory_mb is not None:
                self.mlflow.log_metric("peak_gpu_memory_mb", fold.peak_gpu_memory_mb)
            for path in fold.artifacts:
                if Path(path).is_file():  # a resumed fold's folder may have been cleaned since
                    self.mlflow.log_artifact(path)
            self.mlflow.end_run()

    def log_result(self, result: RunResult, artifacts: list[Path]) -> None:
        """Pooled metrics with their 95 % interval (``uf1_ci_low`` / ``uf1_ci_high``), per corpus
        in a composite, and the baseline; the leaky audit figure only as ``leaky_*`` (not a result)."""
        with self._write():
            metrics = {**result.scores().as_dict(), **_interval_metrics(result.intervals())}
            metrics.update(result.baseline_scores().as_dict("baseline_"))
            metrics["skipped_rows"] = len(result.skipped)  # the rows themselves: skipped.txt, summary.json
            if len(result.datasets) > 1:
                for d, s in result.per_dataset().items():
                    metrics.update({**s.as_dict(f"{d}_"), **_interval_metrics(result.intervals(d), f"{d}_")})
            leaky = result.leaky_scores()
            if leaky is not None:
                metrics.update({"leaky_uf1": leaky.uf1, "leaky_uar": leaky.uar})
            self.mlflow.log_metrics(metrics)
            self.mlflow.set_tags({"mer.interval": result.interval_method,
                                  "mer.bootstrap_resamples": str(result.bootstrap["resamples"]),
                                  "mer.bootstrap_seed": str(result.bootstrap["seed"])})
            for path in artifacts:
                self.mlflow.log_artifact(str(path))

    def log_seeds(self, result: SeedsResult, artifacts: list[Path]) -> None:
        """Each seed's UF1 / UAR (``seed<N>_uf1``), mean and std over seeds, the seed-mean interval."""
        with self._write():
            metrics = {}
            for r in result.runs:
                metrics.update(r.scores().as_dict(f"seed{r.seed}_"))
            for k, (mean, std) in result.spread().items():
                metrics[f"{k}_mean"] = mean
                if len(result.runs) > 1:
                    metrics[f"{k}_std"] = std
            metrics.update(_interval_metrics(result.intervals(), suffix="_mean"))
            self.mlflow.log_metrics(metrics)
            self.mlflow.set_tag("mer.run_dir", str(result.run_dir))
            for path in artifacts:
                self.mlflow.log_artifact(str(path))

    @contextlib.contextmanager
    def child(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> Iterator["Tracker"]:
        active = self._start({k: str(v)[:6000] for k, v in params.items()}, run_name=name, nested=True, tags=dict(tags))
        with self._ended(active.info.run_id, children=False):
            yield self

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        with self._write():
            self.mlflow.log_metrics(dict(metrics))

    def log_params(self, params: Mapping[str, Any]) -> None:
        with self._write():
            self.mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})


def _quiet_store_errors() -> None:
    """MLflow logs a traceback for each database error before raising it: the error is reported
    once, in one line (:func:`store_error`)."""
    logger = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _StoreErrorLogs) for f in logger.filters):
        logger.addFilter(_StoreErrorLogs())


class _StoreErrorLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SQLAlchemy database error")


def _interval_metrics(intervals: Mapping[str, Any], prefix: str = "", suffix: str = "") -> dict[str, float]:
    return {f"{prefix}{name}{suffix}_ci_{end}": getattr(iv, end) for name, iv in intervals.items()
            for end in ("low", "high")}


def _dead(pid: str | None) -> bool:
    """Whether the process ``pid`` (a tag; unknown counts as alive) of this host is gone."""
    return pid is not None and pid.isdigit() and not process_alive(int(pid))


def _system_metrics(config: Mapping[str, Any]) -> bool:
    """MLflow's system metrics need psutil (and pynvml for GPUs): the `system-metrics` extra."""
    wanted = config.get("run", {}).get("system_metrics", "auto")
    if wanted in (False, "false", "off"):
        return False
    try:
        import psutil  # noqa: F401
    except ImportError:
        if wanted in (True, "true", "on"):
            raise RuntimeError("run.system_metrics needs psutil: pip install 'mercore[system-metrics]'") from None
        return False
    return True


def make_tracker(enabled: bool = True, uri: str | None = None, experiment: str = "mer") -> Tracker:
    return MlflowTracker(uri, experiment) if enabled else Tracker()
