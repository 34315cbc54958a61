"""The SQLite MLflow store: created once even by two first runs at once; a half-created one is
repaired, a store that cannot be used is one line saying what to do."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mercore.tracking import MlflowTracker

TOY_CLI = Path(__file__).with_name("toy_cli.py")


@pytest.mark.slow
def test_two_first_runs_at_once_both_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = [subprocess.Popen([sys.executable, str(TOY_CLI), "run", "--plugin", "toy", "--dataset", "toy", "-q",
                              "--workers", "0", "--subjects", "s0", "--subjects", "s1", "--set", "train.epochs=1",
                              "--cache-dir", str(tmp_path / f"cache{i}"), "--tracking-uri", uri],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for proc in runs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    import mlflow

    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name("mer")
    parents = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" not in r.data.tags]
    assert [r.info.status for r in parents] == ["FINISHED", "FINISHED"]
    assert not list(tmp_path.glob(".mlflow.db.creating-*"))


def half_created_store(path: Path) -> None:
    """Let MLflow start creating a store at ``path`` and kill it half-way through its migrations."""
    proc = subprocess.Popen([sys.executable, "-c", f"import mlflow; mlflow.MlflowClient('sqlite:///{path}')"
                             ".search_experiments()"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline and proc.poll() is None, "MLflow created the store before it was killed"
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                if db.execute("SELECT version_num FROM alembic_version").fetchall():
                    break  # migrations have begun; MLflow needs seconds more to finish them
        except sqlite3.Error:
            pass
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM experiments").fetchone() == (0,)


@pytest.mark.slow
def test_a_half_created_store_is_moved_aside_and_created_anew(tmp_path, caplog):
    path = tmp_path / "mlflow.db"
    half_created_store(path)
    tracker = MlflowTracker(f"sqlite:///{path}", "repaired")
    assert tracker.mlflow.get_experiment_by_name("repaired") is not None
    (aside,) = tmp_path.glob("mlflow.db.incomplete-*")
    assert f"{path} was a half-created MLflow store" in caplog.text and aside.name in caplog.text


def test_a_file_that_is_no_store_is_one_line(tmp_path):
    from mercore.tracking import TrackingError

    path = tmp_path / "mlflow.db"
    path.write_text("not a database\n" * 200)
    with pytest.raises(TrackingError, match=r"mlflow.db is not an MLflow store \(file is not a database\); move it"):
        MlflowTracker(f"sqlite:///{path}")
    assert path.read_text().startswith("not a database")  # never deleted: it may be someone's file


def test_a_store_mlflow_rejects_is_reported_in_one_line_and_kept(toy_cli, _migrated_store):
    import shutil

    shutil.copy(_migrated_store, toy_cli.db)
    with sqlite3.connect(toy_cli.db) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")  # a schema from elsewhere
    out = toy_cli("--subjects", "s0", "--subjects", "s1")
    assert out.exit_code == 1
    assert out.output.startswith(f"Error: MLflow store {toy_cli.uri} cannot be used: ")
    assert out.output.endswith(f"mlflow db upgrade {toy_cli.uri})\n") and len(out.output.splitlines()) == 1
    with sqlite3.connect(toy_cli.db) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone() == ("ffffffffffff",)
