"""A signal that lands inside a tracking write waits for the write to finish: an SQLite transaction
cut in half keeps its lock, and the cleanup that marks the runs KILLED then failed on "database is
locked" after tens of seconds (the parallel-signal test failed about 1 run in 9 that way)."""
from __future__ import annotations

import os
import signal

import pytest

from mercore.evaluation.results import FoldResult
from mercore.interrupt import Interrupted, deferred_signals, stop_on_signals


def test_a_signal_inside_a_deferred_block_is_raised_when_the_block_ends():
    done = []
    with stop_on_signals():
        with pytest.raises(Interrupted) as caught:
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGTERM)
                done.append("the write went on")
        assert done == ["the write went on"] and caught.value.signum == signal.SIGTERM
        with deferred_signals():  # the signal was raised once, not again
            pass


def test_a_signal_outside_a_deferred_block_is_raised_at_once():
    with stop_on_signals():
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000_000):  # the handler runs between bytecodes, long before this ends
                pass


def test_a_signal_during_log_fold_finishes_the_fold_run_and_kills_the_parent(mlflow_uri, monkeypatch):
    import mlflow

    from mercore.tracking import MlflowTracker

    tracker = MlflowTracker(mlflow_uri, "deferred")
    real = mlflow.tracking.MlflowClient.log_batch

    def signalled(self, *args, **kwargs):  # the signal lands in the middle of the fold's writes (once)
        monkeypatch.setattr(mlflow.tracking.MlflowClient, "log_batch", real)
        os.kill(os.getpid(), signal.SIGTERM)
        return real(self, *args, **kwargs)

    fold = FoldResult(0, "s0", ["k"], ["toy"], ["toy/s0"], [0], [0], [[1.0, 0.0]], [0],
                      history=[("train/loss", 0.5, 0)])
    with stop_on_signals(), pytest.raises(Interrupted):
        with tracker.parent("signalled", {"train": {"epochs": 1}}, {}):
            monkeypatch.setattr(mlflow.tracking.MlflowClient, "log_batch", signalled)
            tracker.log_fold(fold, reused=False)
            raise AssertionError("the signal should stop the run once the fold is logged")
    client = mlflow.tracking.MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("deferred").experiment_id])
    status = {r.data.tags.get("mlflow.runName"): r.info.status for r in runs}
    assert status == {"signalled": "KILLED", "fold 000 s0": "FINISHED"}
    assert client.get_metric_history(next(r for r in runs if "mlflow.parentRunId" in r.data.tags).info.run_id,
                                     "train.loss")[0].value == 0.5
