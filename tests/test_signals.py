"""Stopping a parallel run with a real signal: workers end, finished folds are kept and reused,
MLflow runs are marked KILLED, and a second Ctrl-C exits at once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mercore.runner import run
from mercore.spec import ExecutionOptions, RunSpec
from mercore.testing.processes import children, wait_gone

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to find the workers")
TOY_CLI = Path(__file__).with_name("toy_cli.py")
EPOCHS = "train.epochs=600"  # ~2 s a fold: the signal lands while folds are running
SUBJECTS = ["s0", "s1", "s2", "s3"]


@pytest.fixture
def start_toy_run():
    """Starts `mer run --workers 2` of the toy method in a session of its own; whatever a failed
    test leaves of it (the run, its fold processes) is killed afterwards."""
    started: list[subprocess.Popen] = []

    def start(cache: Path, uri: str) -> subprocess.Popen:
        args = [sys.executable, str(TOY_CLI), "run", "--plugin", "toy", "--dataset", "toy", "--workers", "2",
                "--cache-dir", str(cache), "--tracking-uri", uri, "--experiment", "signals", "-q", "--set", EPOCHS]
        args += [a for s in SUBJECTS for a in ("--subjects", s)]
        started.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True))
        return started[-1]
    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its fold processes, orphaned or not
        except ProcessLookupError:
            pass
        proc.communicate()


def wait_for_first_fold(proc: subprocess.Popen, cache: Path) -> list[int]:
    """The worker pids, once the first fold is recorded (and the second worker is mid-fold)."""
    deadline = time.monotonic() + 180
    while not list(cache.glob("runs/*/folds/*.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no fold finished in 180 s"
        time.sleep(0.05)
    workers = children(proc.pid)
    assert len(workers) == 2
    return workers


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_parallel_run_and_the_rerun_keeps_its_folds(signum, toy_registry, tmp_path, mlflow_uri,
                                                                      start_toy_run):
    import mlflow

    cache = tmp_path / "cache"
    proc = start_toy_run(cache, mlflow_uri)
    workers = wait_for_first_fold(proc, cache)
    sent = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # Ctrl-C in a terminal reaches the whole process group
    else:
        os.kill(proc.pid, signum)  # kill, a scheduler or a container runtime signal the main process
    _, err = proc.communicate(timeout=10)
    assert wait_gone(workers, until=sent + 10), "fold processes still alive 10 s after the signal"
    assert proc.returncode == 128 + signum
    kept = sorted(p.name for p in cache.glob("runs/*/folds/*.json"))
    assert 1 <= len(kept) < 4
    assert f"stopped by {signal.Signals(signum).name}: {len(kept)} of 4 folds are recorded in" in err
    assert "Traceback" not in err

    client = mlflow.tracking.MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("signals")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "KILLED"
    assert {r.info.status for r in runs} <= {"KILLED", "FINISHED"}

    spec = RunSpec("toy", dataset="toy", overrides=[EPOCHS], subjects=SUBJECTS)
    resumed = run(spec, ExecutionOptions(tracking=False, progress=False, workers=2, cache_dir=cache),
                  registry=toy_registry)
    assert resumed.reused_folds == len(kept)  # every fold that finished was recorded, and is reused
    whole = run(spec, ExecutionOptions(tracking=False, progress=False, workers=2, cache_dir=tmp_path / "uninterrupted"),
                registry=toy_registry)
    assert [f.probabilities for f in resumed.folds] == [f.probabilities for f in whole.folds]


def test_workers_die_with_a_killed_parent(tmp_path, mlflow_uri, start_toy_run):
    cache = tmp_path / "cache"
    proc = start_toy_run(cache, mlflow_uri)
    workers = wait_for_first_fold(proc, cache)
    os.kill(proc.pid, signal.SIGKILL)  # no handler runs: the kernel tells the workers
    proc.communicate(timeout=10)
    sent = time.monotonic()
    assert wait_gone(workers, until=sent + 10), "fold processes outlived their parent by 10 s"


@pytest.mark.slow
def test_runs_left_running_by_a_killed_process_are_marked_killed_by_the_next(toy_registry, tmp_path, mlflow_uri,
                                                                            start_toy_run):
    import mlflow

    cache = tmp_path / "cache"
    proc = start_toy_run(cache, mlflow_uri)
    wait_for_first_fold(proc, cache)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    client = mlflow.tracking.MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("signals")
    assert "RUNNING" in {r.info.status for r in client.search_runs([experiment.experiment_id])}
    run(RunSpec("toy", dataset="toy", overrides=[EPOCHS], subjects=SUBJECTS),
        ExecutionOptions(cache_dir=cache, progress=False, tracking_uri=mlflow_uri, experiment="signals"),
        registry=toy_registry)
    runs = client.search_runs([experiment.experiment_id])
    assert "RUNNING" not in [r.info.status for r in runs]
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    # only a run no longer RUNNING is resumed: the orphan was marked KILLED, then the rerun finished it
    assert parent.info.status == "FINISHED" and parent.data.tags["mer.reruns"] == "1"


def test_a_second_ctrl_c_exits_at_once(tmp_path):
    """The first Ctrl-C starts a cleanup (here one that would take a minute); the second ends it."""
    script = textwrap.dedent("""
        import sys, time
        from mercore.interrupt import stop_on_signals
        with stop_on_signals():
            try:
                print("ready", flush=True)
                time.sleep(60)
            except KeyboardInterrupt:
                print("cleaning up", flush=True)
                time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline() == "cleaning up\n"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=5)
    assert time.monotonic() - sent < 2
    assert proc.returncode == 130 and "SIGINT again: exiting at once" in err
