"""A tracking store that fails -- a server that is not there or never answers, a store another
process has locked, at set-up or mid-run, a path where no lock file can be made, a kind of store
MLflow does not know -- is one line naming it, in seconds, and keeps every finished fold (issue 34,
items 6, 10 and 14)."""
from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
import time
from typing import Iterator

import pytest

import mercore.tracking
from mercore.tracking import TrackingError, store_error

SUBJECTS = ("--subjects", "s0", "--subjects", "s1", "--subjects", "s2", "--workers", "0", "--set", "train.epochs=1")


def one_line(output: str) -> str:
    """The one error line of ``output`` (a run says what it uses first)."""
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in output and "Exception" not in output, output
    assert output.strip().endswith(errors[0]), output
    return errors[0]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """The URI of a server that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:  # closed: the test is over
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for conn in held:
        conn.close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]  # nothing listens there once it is closed


def test_a_tracking_server_nobody_runs_fails_in_seconds_naming_it(toy_cli, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")  # restored after the test (set by the tracker otherwise)
    uri = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    out = toy_cli(*SUBJECTS, "--tracking-uri", uri)
    assert time.monotonic() - start < 10  # MLflow's own retries took 277 s
    assert out.exit_code == 1
    assert one_line(out.output).startswith(f"Error: MLflow tracking server {uri} does not answer (connection refused; ")


def test_a_tracking_server_that_never_answers_times_out_naming_it(toy_cli, monkeypatch, silent_server):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    start = time.monotonic()
    out = toy_cli(*SUBJECTS, "--tracking-uri", silent_server)
    assert time.monotonic() - start < 10  # it hung for good
    assert out.exit_code == 1
    line = one_line(out.output)
    assert line.startswith(f"Error: MLflow tracking server {silent_server} does not answer (no reply in time; "
                           "each request waits 1 s")
    assert "mlflow db upgrade" not in line


def test_the_default_timeout_bounds_connect_and_read(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    assert mercore.tracking.limit_http_requests() == mercore.tracking.HTTP_TIMEOUT_S <= 30


def test_a_locked_store_is_named_as_locked_and_left_in_place(toy_cli, _migrated_store, monkeypatch):
    shutil.copy(_migrated_store, toy_cli.db)
    monkeypatch.setattr(mercore.tracking, "LOCK_WAIT_S", 0.2)
    holder = sqlite3.connect(toy_cli.db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's write in progress
    try:
        out = toy_cli(*SUBJECTS)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert out.exit_code == 1
    line = one_line(out.output)
    assert line.startswith(f"Error: MLflow store {toy_cli.uri} is locked: another process holds it")
    assert "move it away" not in line and "not an MLflow store" not in line
    assert toy_cli.db.stat().st_size == _migrated_store.stat().st_size  # the real store, where it was


def test_a_store_locked_mid_run_is_one_line_and_keeps_the_finished_folds(toy_cli, _migrated_store, monkeypatch):
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    shutil.copy(_migrated_store, toy_cli.db)
    real = SqlAlchemyStore.log_batch
    runs: set[str] = set()

    def locked_from_the_second_fold(self, run_id, *args, **kwargs):
        runs.add(run_id)
        if len(runs) > 2:  # the parent's and the first fold's runs are logged, then the store is locked
            raise MlflowException("(sqlite3.OperationalError) database is locked")
        return real(self, run_id, *args, **kwargs)

    monkeypatch.setattr(SqlAlchemyStore, "log_batch", locked_from_the_second_fold)
    out = toy_cli(*SUBJECTS)
    assert out.exit_code == 1
    line = one_line(out.output)
    (run_dir,) = toy_cli.cache.glob("runs/*")
    assert line.startswith(f"Error: MLflow store {toy_cli.uri} is locked")
    assert line.endswith(f"2 of 3 folds are recorded in {run_dir}; the same command resumes from there")
    assert len(list(run_dir.glob("folds/*.json"))) == 2  # the fold that failed to log is on disk too

    import mlflow

    client = mlflow.tracking.MlflowClient(toy_cli.uri)
    runs = client.search_runs([client.get_experiment_by_name("mer").experiment_id])
    assert "RUNNING" not in {r.info.status for r in runs}
    assert [r.info.status for r in runs if "mlflow.parentRunId" not in r.data.tags] == ["FAILED"]
    monkeypatch.setattr(SqlAlchemyStore, "log_batch", real)
    again = toy_cli(*SUBJECTS)
    assert again.exit_code == 0 and "2 fold(s) reused from an earlier identical run" in again.output, again.output


def test_a_store_where_no_lock_file_can_be_made_is_named(toy_cli, tmp_path):
    (tmp_path / "file").write_text("")
    uri = f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}"
    out = toy_cli(*SUBJECTS, "--tracking-uri", uri)
    assert out.exit_code == 1
    line = one_line(out.output)
    assert line.startswith(f"Error: MLflow store {tmp_path / 'file' / 'mlflow.db'}: cannot create its lock file "
                           f"{tmp_path / 'file' / '.mlflow.db.lock'} (")
    assert line.endswith("pass a --tracking-uri in a folder you can write, or run with --no-tracking")


def test_an_unknown_kind_of_store_is_bad_input(toy_cli):
    out = toy_cli(*SUBJECTS, "--tracking-uri", "nosuch://host/x")
    assert out.exit_code == 2
    line = one_line(out.output)
    assert line.startswith("Error: --tracking-uri nosuch://host/x: MLflow knows no store of this kind")
    assert "mlflow db upgrade" not in line


@pytest.mark.parametrize("uri, upgrade", [("sqlite:///m.db", True), ("postgresql://h/db", True),
                                          ("mysql+pymysql://h/db", True), ("http://h:5000", False),
                                          ("https://h", False), ("file:./mlruns", False)])
def test_a_schema_upgrade_is_advised_only_for_a_database_store(uri, upgrade):
    error = store_error(uri, RuntimeError("Detected out-of-date database schema. Take a backup"), setting_up=True)
    assert isinstance(error, TrackingError) and str(error).startswith(f"MLflow store {uri} cannot be used: ")
    assert ("mlflow db upgrade" in str(error)) == upgrade
