"""The evaluator's parts on their own: the fold store's verdict on a record, and an executor of
one's own plugged into the LOSO loop."""
from __future__ import annotations

from mercore import ExecutionOptions, RunSpec
from mercore.evaluation.executors import Executor
from mercore.evaluation.fold_store import FoldStore
from mercore.evaluation.loso import LOSOEvaluator
from mercore.evaluation.results import FoldResult
from mercore.protocols import loso_folds
from mercore.runner import prepare
from mercore.sample import Sample

IDENTITY = {"config": "c1", "software": {"mercore": "1.0"}, "labels": {"toy/s0": "l0", "toy/s1": "l1"},
            "inputs": {"toy/s0": "i0", "toy/s1": "i1"}}


def _record(fold, samples, identity=IDENTITY) -> FoldResult:
    tests = [samples[i] for i in fold.test]
    return FoldResult(index=fold.index, fold=fold.name, keys=[s.key for s in tests],
                      datasets=[s.dataset for s in tests], subjects=[s.group for s in tests],
                      y_true=[0] * len(tests), y_pred=[0] * len(tests), probabilities=[[1.0, 0.0]] * len(tests),
                      baseline_pred=[0] * len(tests), identity=identity)


def test_the_fold_store_says_why_a_record_does_not_hold(tmp_path):
    samples = [Sample("toy", f"s{s}", f"c{c}", labels={"megc3": 0}) for s in range(2) for c in range(2)]
    first, second = loso_folds([s.group for s in samples])
    store = FoldStore(tmp_path)
    assert store.load(first, samples, IDENTITY) == (None, "not run before")

    store.save(_record(first, samples))
    assert sorted(p.name for p in (tmp_path / "folds").iterdir()) == ["000.json"]  # no temporary file left
    assert store.load(first, samples, IDENTITY) == (_record(first, samples), "")
    plan = store.plan([first, second], samples, IDENTITY)
    assert (plan.total, list(plan.reused), plan.recomputed) == (2, [0], {"not run before": 1})

    moved = {**IDENTITY, "labels": {**IDENTITY["labels"], "toy/s1": "other"}}
    assert store.load(first, samples, moved) == (None, "labels of toy/s1 changed")
    assert store.load(first, samples, {**IDENTITY, "config": "c2"}) == (None, "config changed")

    elsewhere = _record(first, samples)
    elsewhere.index = 1  # fold 1's record, of fold 0's samples
    store.save(elsewhere)
    assert store.load(second, samples, IDENTITY) == (None, "other test samples")
    store.path(1).write_text('{"index": 1, "fold": ')  # half-written
    assert store.load(second, samples, IDENTITY) == (None, f"record {store.path(1)} unreadable")


class Backwards(Executor):
    """Runs the folds last first, in this process, and remembers which it was given."""

    def __init__(self) -> None:
        self.given: list[int] = []

    def run(self, folds, job, finish, advance):
        self.given += [f.index for f in folds]
        for fold in reversed(folds):
            finish(job(fold))


def test_an_executor_of_ones_own_gets_the_folds_left(toy_registry, tmp_path):
    prep = prepare(RunSpec("toy", dataset="toy", subjects=["s0", "s1", "s2"], overrides=["train.epochs=2"]),
                   ExecutionOptions(cache_dir=tmp_path), registry=toy_registry)
    store = prep.registry.feature_store(tmp_path)

    def evaluate(run_dir, executor="local"):
        evaluator = LOSOEvaluator(store, run_dir, progress=False, executor=executor)
        return evaluator, evaluator.evaluate(prep.method, prep.data, prep.config)

    backwards = Backwards()
    evaluator, first = evaluate(tmp_path / "run", backwards)
    assert backwards.given == [0, 1, 2]
    assert [f.index for f in first.folds] == [0, 1, 2]  # in fold order, whatever order they finished in
    assert (evaluator.finished, evaluator.earlier, evaluator.total) == (3, 0, 3)
    _, sequential = evaluate(tmp_path / "sequential")
    assert [f.probabilities for f in first.folds] == [f.probabilities for f in sequential.folds]

    (tmp_path / "run" / "folds" / "001.json").unlink()
    again = Backwards()
    evaluator, second = evaluate(tmp_path / "run", again)
    assert again.given == [1] and second.reused_folds == 2
    assert (evaluator.finished, evaluator.earlier, evaluator.total) == (3, 2, 3)
    assert [f.probabilities for f in second.folds] == [f.probabilities for f in first.folds]


def test_every_stage_gets_the_runs_dataset_adapters_through_its_context(toy_registry, tmp_path, monkeypatch):
    """A stage that reads another corpus (MoExt's pre-training data) finds its adapter in the
    context, from the registry the run was given, never by a lookup of its own mid-fold."""
    import pytest
    import torch

    from mercore import StageContext
    from mercore.runner import run
    from mercore.training.supervised import SupervisedTrainer

    seen = []
    real = SupervisedTrainer.fit

    def fit(self, model, data, ctx):
        seen.append((sorted(ctx.datasets), ctx.dataset("toy").name))
        return real(self, model, data, ctx)

    monkeypatch.setattr(SupervisedTrainer, "fit", fit)
    run(RunSpec("toy", dataset="toy", subjects=["s0", "s1"], overrides=["train.epochs=1"]),
        ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False, workers=0), registry=toy_registry)
    assert seen == [(toy_registry.list("datasets"), "toy")] * 2
    bare = StageContext(device=torch.device("cpu"), seed=0, num_classes=2, class_names=("a", "b"), fold="f",
                        work_dir=tmp_path)
    with pytest.raises(ValueError, match=r"no dataset 'casme2' in this stage's context \(it holds: none\)"):
        bare.dataset("casme2")
