"""A stop is honoured wherever the signal lands: inside the MLflow store's set-up (deferred to its
end), inside a finalizer or garbage-collection callback, where Python would print "Exception
ignored" and run on (sent again), and a stop before any fold runs counts the folds an earlier run
recorded (issue 34, items 5 and 13)."""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from mercore.interrupt import Interrupted, stop_on_signals

FINALIZER = """
    import os, signal
    class Finalized:
        def __del__(self):  # the signal lands while a finalizer runs
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
"""


def run_script(body: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(FINALIZER) + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_stop_raised_in_a_finalizer_stops_the_command():
    done = run_script("""
        from mercore.interrupt import Interrupted, stop_on_signals
        with stop_on_signals():
            try:
                Finalized()
                for _ in range(10 ** 8):  # the command goes on, for seconds
                    pass
                print("ran on")
            except Interrupted as stop:
                print("stopped by", stop)
    """)
    assert done.stdout == "stopped by SIGTERM\n"
    assert "Exception ignored" not in done.stderr, done.stderr


def test_a_fold_process_terminated_in_a_finalizer_unwinds_and_exits_143_quietly():
    done = run_script("""
        from mercore.interrupt import unwind_on_sigterm
        unwind_on_sigterm()
        try:
            Finalized()
            for _ in range(10 ** 8):
                pass
            print("ran on")
        finally:
            print("unwound")
    """)
    assert done.returncode == 143 and done.stdout == "unwound\n"
    assert "Exception ignored" not in done.stderr and "SystemExit" not in done.stderr, done.stderr


def test_a_signal_during_the_store_set_up_stops_right_after_it(mlflow_uri, monkeypatch):
    import mlflow

    from mercore.tracking import MlflowTracker

    real = mlflow.set_experiment

    def signalled_in_a_gc_callback(name):  # as SQLAlchemy's set-up code runs them
        def callback(phase, info):
            gc.callbacks.remove(callback)
            os.kill(os.getpid(), signal.SIGTERM)
        gc.callbacks.append(callback)
        gc.collect()
        return real(name)

    monkeypatch.setattr(mlflow, "set_experiment", signalled_in_a_gc_callback)
    with stop_on_signals(), pytest.raises(Interrupted) as stopped:
        MlflowTracker(mlflow_uri, "set-up")
        for _ in range(10 ** 8):  # what the run would go on with (it trained on)
            pass
    assert stopped.value.signum == signal.SIGTERM
    assert mlflow.MlflowClient(mlflow_uri).get_experiment_by_name("set-up") is not None  # the set-up finished


def test_a_stop_before_the_first_fold_counts_the_folds_an_earlier_run_recorded(toy_cli, monkeypatch):
    import mercore.runner
    from mercore.tracking import Tracker

    args = ("--subjects", "s0", "--subjects", "s1", "--subjects", "s2", "--workers", "0", "--no-tracking")
    assert toy_cli(*args).exit_code == 0
    (run_dir,) = toy_cli.cache.glob("runs/*")

    def signalled(*args, **kwargs) -> Tracker:  # the signal lands while the store is set up
        os.kill(os.getpid(), signal.SIGTERM)
        return Tracker()

    monkeypatch.setattr(mercore.runner, "make_tracker", signalled)
    out = toy_cli(*args)
    assert out.exit_code == 143
    assert out.output.strip().endswith(f"stopped by SIGTERM: 3 of 3 folds are recorded (3 from an earlier run) in "
                                       f"{run_dir}; the same command resumes from there"), out.output
