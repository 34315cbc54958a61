"""The LOSO loop end to end on the toy method: leak-free, pooled, resumable, tracked."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import mercore
from mercore.config import ConfigError
from mercore.runner import run
from mercore.spec import ExecutionOptions, RunSpec


def test_loso_run_beats_majority_and_pools(toy_registry, tmp_path):
    result = run(RunSpec("toy", dataset="toy"), ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False),
                 registry=toy_registry)
    assert len(result.folds) == 6
    assert sum(len(f.keys) for f in result.folds) == 54
    for fold in result.folds:  # every test sample belongs to the held-out subject only
        assert set(fold.subjects) == {fold.fold}
    assert result.metrics["uf1"] > result.baseline["uf1"] + 0.3
    # pooled, not averaged per fold: recompute from the stored predictions
    y_true = [t for f in result.folds for t in f.y_true]
    y_pred = [p for f in result.folds for p in f.y_pred]
    from sklearn.metrics import f1_score
    assert result.metrics["uf1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    summary = json.loads((result.run_dir / "artifacts" / "summary.json").read_text())
    assert summary["overall"]["uf1"] == pytest.approx(result.metrics["uf1"])
    assert summary["environment"]["torch"] == torch.__version__
    assert summary["environment"]["mercore"] == mercore.__version__
    assert {"numpy", "opencv", "scikit-image", "python"} <= set(summary["environment"])


def test_rerun_resumes_finished_folds_and_redoes_corrupt_ones(toy_registry, tmp_path):
    first = run(RunSpec("toy", dataset="toy"), ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False),
                registry=toy_registry)
    (first.run_dir / "folds" / "002.json").write_text('{"index": 2, "fold": ')  # half-written
    (first.run_dir / "folds" / "004.json").unlink()
    second = run(RunSpec("toy", dataset="toy"), ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False),
                 registry=toy_registry)
    assert second.reused_folds == 4
    assert second.metrics == first.metrics
    fresh = run(RunSpec("toy", dataset="toy"),
                ExecutionOptions(cache_dir=tmp_path, fresh=True, progress=False, tracking=False),
                registry=toy_registry)
    assert fresh.reused_folds == 0
    assert fresh.metrics == first.metrics  # seeded: identical on CPU


def test_validation_split_never_contains_test_subject(toy_registry, tmp_path):
    result = run(RunSpec("toy", dataset="toy", overrides={"validation.subjects": 0.25}),
                 ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False), registry=toy_registry)
    assert all(f.n_val > 0 for f in result.folds)
    assert all(f.n_train + f.n_val + len(f.keys) == 54 for f in result.folds)


def test_unknown_config_key_variant_and_subjects_are_clear_errors(toy_registry, tmp_path):
    options = ExecutionOptions(tracking=False, cache_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"unknown config key 'train.lrr'.*valid keys under 'train'"):
        run(RunSpec("toy", dataset="toy", overrides=["train.lrr=1"]), options, registry=toy_registry)
    with pytest.raises(ConfigError, match="unknown variant 'z' of toy; choose one of: a, b"):
        run(RunSpec("toy", dataset="toy", variant="z"), options, registry=toy_registry)
    with pytest.raises(ConfigError, match="no samples for nobody"):
        run(RunSpec("toy", dataset="toy", subjects=["nobody"]), options, registry=toy_registry)


def test_subjects_variant_and_profile(toy_registry, tmp_path):
    result = run(RunSpec("toy", variant="b", dataset="toy", profile="quick", subjects=["s0", "toy/s1", "s2"]),
                 ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False), registry=toy_registry)
    assert len(result.folds) == 3
    assert result.config["model"]["hidden"] == 8
    assert result.config["train"]["epochs"] == 10
    assert result.config["meta"]["profile"] == "quick"


def test_mlflow_parent_with_nested_fold_runs_and_artifacts(toy_registry, tmp_path, mlflow_uri):
    import mlflow

    result = run(RunSpec("toy", dataset="toy", subjects=["s0", "s1", "s2"]),
                 ExecutionOptions(cache_dir=tmp_path, progress=False, tracking_uri=mlflow_uri, experiment="test"),
                 registry=toy_registry)
    client = mlflow.tracking.MlflowClient(mlflow_uri)
    parent = client.get_run(result.mlflow_run_id)
    assert parent.data.metrics["uf1"] == pytest.approx(result.metrics["uf1"])
    assert parent.data.params["train.lr"] == "0.05"
    assert parent.data.params["env.torch"] == torch.__version__
    exp = client.get_experiment_by_name("test")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'")
    assert len(children) == 3
    history = client.get_metric_history(children[0].info.run_id, "train.loss")
    assert len(history) == 10                              # the quick profile: the default on a CPU
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id)}
    assert {"config.yaml", "predictions.csv", "summary.json", "summary.md", "confusion_matrix.png"} <= artifacts


def test_a_rerun_resumes_its_mlflow_parent_run_instead_of_adding_one(toy_registry, tmp_path, mlflow_uri):
    """Every rerun that reused all folds used to add another parent run of the same name: the parent
    mirrors the run folder now, and only other params (here the feature-worker count) start a new one."""
    import mlflow

    spec = RunSpec("toy", dataset="toy", subjects=["s0", "s1", "s2"])
    options = ExecutionOptions(tracking=True, tracking_uri=mlflow_uri, experiment="rerun", cache_dir=tmp_path,
                               progress=False)
    first = run(spec, options, registry=toy_registry)
    again = run(spec, options, registry=toy_registry)
    client = mlflow.tracking.MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("rerun").experiment_id

    def parents():
        return [r for r in client.search_runs([exp]) if "mlflow.parentRunId" not in r.data.tags]

    def children(parent_id):
        return client.search_runs([exp], f"tags.mlflow.parentRunId = '{parent_id}'")

    assert again.reused_folds == 3 and again.mlflow_run_id == first.mlflow_run_id
    (parent,) = parents()
    assert parent.info.status == "FINISHED" and parent.data.tags["mer.reruns"] == "1"
    assert parent.data.metrics["uf1"] == pytest.approx(again.metrics["uf1"]) and len(children(parent.info.run_id)) == 3
    # every fold recomputed: the earlier fold runs are superseded
    fresh = run(spec, replace(options, fresh=True), registry=toy_registry)
    assert fresh.mlflow_run_id == first.mlflow_run_id and len(parents()) == 1
    folds = children(first.mlflow_run_id)
    superseded = [c for c in folds if "mer.superseded_by" in c.data.tags]
    assert len(folds) == 6 and len(superseded) == 3
    assert {c.data.tags["mer.superseded_by"] for c in superseded} == {c.info.run_id for c in folds} - {
        c.info.run_id for c in superseded}
    # same folder, other params
    other = run(replace(spec, overrides=["run.feature_workers=1"]), options, registry=toy_registry)
    assert other.run_dir == first.run_dir and other.mlflow_run_id != first.mlflow_run_id and len(parents()) == 2
    assert len(children(other.mlflow_run_id)) == 3  # a new parent logs every fold, reused ones too


class _WritesAFile(mercore.Trainer):
    """A stage that leaves a file for the tracker, as MoExt's reconstruction preview does."""

    def fit(self, model, data, ctx):
        path = ctx.work_dir / "note.txt"
        path.write_text(ctx.fold)
        ctx.log_artifact(path)
        with pytest.raises(ValueError, match="not a file under the fold's work_dir"):
            ctx.log_artifact(ctx.work_dir.parent / "elsewhere.txt")
        return model


def test_stage_artifacts_reach_the_fold_runs(toy_registry, tmp_path, mlflow_uri, monkeypatch):
    import mlflow

    monkeypatch.setattr(type(toy_registry.method("toy")), "stages", lambda self, config: [_WritesAFile()])
    result = run(RunSpec("toy", dataset="toy", subjects=["s0", "s1"]),
                 ExecutionOptions(workers=1, cache_dir=tmp_path, progress=False, tracking_uri=mlflow_uri,
                                  experiment="artifacts"),
                 registry=toy_registry)
    assert all(len(f.artifacts) == 1 and Path(f.artifacts[0]).read_text() == f.fold for f in result.folds)
    client = mlflow.tracking.MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("artifacts")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'")
    assert [[a.path for a in client.list_artifacts(c.info.run_id)] for c in children] == [["note.txt"]] * 2


def test_parallel_folds_give_the_sequential_result(toy_registry, tmp_path):
    spec, options = RunSpec("toy", dataset="toy"), ExecutionOptions(tracking=False, progress=False)
    seq = run(spec, replace(options, cache_dir=tmp_path / "a"), registry=toy_registry)
    par = run(spec, replace(options, cache_dir=tmp_path / "b", workers=2), registry=toy_registry)
    assert [f.y_pred for f in par.folds] == [f.y_pred for f in seq.folds]
    assert par.metrics == seq.metrics


@pytest.mark.parametrize("workers", [0, 2])
def test_the_fold_bar_moves_with_the_epochs_of_running_folds(toy_registry, tmp_path, monkeypatch, workers):
    """The LOSO bar counts shares of folds as epochs end (in fold processes too), never going back,
    so it moves during the first fold and its ETA does not wait for whole folds."""
    from tqdm.auto import tqdm

    from mercore.evaluation import loso

    shown: list[float] = []

    class Recording(tqdm):
        def refresh(self, *args, **kwargs):
            if self.desc.startswith("LOSO"):
                shown.append(float(self.n))
            return super().refresh(*args, **kwargs)

    monkeypatch.setattr(loso, "tqdm", Recording)
    result = run(RunSpec("toy", dataset="toy"),
                 ExecutionOptions(workers=workers, cache_dir=tmp_path, progress=True, tracking=False),
                 registry=toy_registry)
    assert any(0 < n < 1 for n in shown), shown  # the first fold shows its epochs
    assert shown == sorted(shown) and shown[-1] == len(result.folds)


def test_spawned_fold_processes_give_the_forked_result(toy_registry, tmp_path):
    """Where fork is unsafe (macOS) or missing (Windows) fold processes are spawned: the fold job
    is pickled to them instead of inherited, and the predictions are the same."""
    options = ExecutionOptions(tracking=False, progress=False, workers=2)
    forked = run(RunSpec("toy", dataset="toy", overrides=["run.start_method=fork"]),
                 replace(options, cache_dir=tmp_path / "a"), registry=toy_registry)
    spawned = run(RunSpec("toy", dataset="toy", overrides=["run.start_method=spawn"]),
                  replace(options, cache_dir=tmp_path / "b"), registry=toy_registry)
    assert [f.y_pred for f in spawned.folds] == [f.y_pred for f in forked.folds]
    assert [f.probabilities for f in spawned.folds] == [f.probabilities for f in forked.folds]
    assert spawned.run_dir.name == forked.run_dir.name  # how processes start is not part of a run's identity


def test_a_bad_start_method_is_refused_before_any_work(toy_registry, tmp_path):
    with pytest.raises(ConfigError, match=r"run.start_method.*one of auto, fork, spawn, forkserver"):
        run(RunSpec("toy", dataset="toy", overrides=["run.start_method=thread"]),
            ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False), registry=toy_registry)
    assert not (tmp_path / "runs").exists()


def test_auto_workers_use_the_cores_on_cpu_only(toy_registry, tmp_path, monkeypatch):
    from mercore.evaluation import loso

    monkeypatch.setattr(loso, "usable_cores", lambda: 8)
    assert loso.auto_workers("cpu", folds=16) == loso.MAX_AUTO_WORKERS
    assert loso.auto_workers("cpu", folds=3) == 3
    assert loso.auto_workers("cpu", folds=1) == 0           # one fold: no pool to start
    monkeypatch.setattr(loso, "resolve_device", lambda spec: torch.device("cuda"))
    assert loso.auto_workers("auto", folds=16) == 0          # a GPU is shared, not split between processes
    monkeypatch.setattr(loso, "resolve_device", lambda spec: torch.device("cpu"))
    monkeypatch.setattr(loso, "usable_cores", lambda: 1)
    assert loso.auto_workers("auto", folds=16) == 0
    with pytest.raises(ValueError, match="workers"):
        loso.LOSOEvaluator(None, tmp_path, workers=-1)


def _spy_on_fold_processes(monkeypatch) -> list[tuple[int, int, int]]:
    """Each fold-process pool a run starts, as (folds it runs, workers, torch threads per worker)."""
    from mercore.evaluation.executors import ProcessExecutor

    pools = []
    run_pool = ProcessExecutor.run
    monkeypatch.setattr(ProcessExecutor, "run", lambda self, folds, *args:
                        pools.append((len(folds), self.workers, self.threads)) or run_pool(self, folds, *args))
    return pools


def test_auto_workers_give_the_sequential_result(toy_registry, tmp_path, monkeypatch):
    from mercore.evaluation import loso

    monkeypatch.setattr(loso, "usable_cores", lambda: 2)
    pools = _spy_on_fold_processes(monkeypatch)
    spec, options = RunSpec("toy", dataset="toy"), ExecutionOptions(tracking=False, progress=False)
    seq = run(spec, replace(options, cache_dir=tmp_path / "a"), registry=toy_registry)
    assert pools == []
    auto = run(spec, replace(options, cache_dir=tmp_path / "b", workers="auto"), registry=toy_registry)
    assert [workers for _, workers, _ in pools] == [2]
    assert auto.metrics == seq.metrics


def test_leakage_audit_is_reported_apart_and_does_not_change_the_result(toy_registry, tmp_path):
    options = ExecutionOptions(tracking=False, progress=False)
    on = run(RunSpec("toy", dataset="toy"), replace(options, cache_dir=tmp_path / "a"), registry=toy_registry)
    off = run(RunSpec("toy", dataset="toy", overrides={"evaluation.leakage_audit": False}),
              replace(options, cache_dir=tmp_path / "b"), registry=toy_registry)
    assert on.metrics == off.metrics                       # auditing never feeds back into training
    assert off.leaky_scores() is None
    leaky = on.leaky_scores()
    assert len(on.folds[0].audit) == 10                   # one entry per epoch (quick profile on a CPU)
    assert leaky.acc >= on.scores().acc                   # selecting on the test subject can only flatter


def test_ray_executor_matches_local_run(toy_registry, tmp_path, mlflow_uri):
    pytest.importorskip("ray")
    import mlflow

    spec = RunSpec("toy", dataset="toy", subjects=["s0", "s1", "s2"])
    local = run(spec, ExecutionOptions(cache_dir=tmp_path / "a", tracking=False, progress=False),
                registry=toy_registry)
    remote = run(spec, ExecutionOptions(cache_dir=tmp_path / "b", executor="ray", tracking=True,
                                        tracking_uri=mlflow_uri, experiment="ray", progress=False),
                 registry=toy_registry)
    assert [f.y_pred for f in remote.folds] == [f.y_pred for f in local.folds]
    client = mlflow.tracking.MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("ray")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{remote.mlflow_run_id}'")
    assert sorted(c.data.tags["mer.fold"] for c in children) == ["toy/s0", "toy/s1", "toy/s2"]


def test_a_method_refuses_an_input_kind_it_cannot_read_before_loading_anything(toy_registry, tmp_path):
    class NeedsRelease(type(toy_registry.method("toy"))):
        inputs = ("flow-release",)

    with pytest.raises(ConfigError, match=r"^toy needs a precomputed-flow release, which dataset 'toy' \(clips\) "
                                          r"does not provide; datasets it can use: megc2019-flow$"):
        run(RunSpec(NeedsRelease(), dataset="toy"),
            ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False),
            registry=toy_registry)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "features").exists()


def test_a_resumed_last_fold_runs_as_it_would_have_in_the_first_run(toy_registry, tmp_path, monkeypatch):
    """Same processes and torch threads: otherwise its last digits (and predictions) could differ."""
    from mercore.evaluation import loso

    monkeypatch.setattr(loso, "usable_cores", lambda: 2)
    calls = _spy_on_fold_processes(monkeypatch)
    spec = RunSpec("toy", dataset="toy", subjects=["s0", "s1", "s2"])
    options = ExecutionOptions(tracking=False, progress=False, cache_dir=tmp_path, workers="auto")
    first = run(spec, options, registry=toy_registry)
    (first.run_dir / "folds" / "002.json").unlink()
    second = run(spec, options, registry=toy_registry)
    assert calls == [(3, 2, 1), (1, 2, 1)]  # the one fold left still runs in a fold process of 2 workers' threads
    assert second.reused_folds == 2 and [f.probabilities for f in second.folds] == [f.probabilities for f in first.folds]


def test_dataset_options_from_the_config_reach_the_adapter_and_d_options_win(toy_registry, tmp_path, monkeypatch):
    seen = []
    cls = type(toy_registry.dataset("toy"))
    load = cls.load
    monkeypatch.setattr(cls, "load", lambda self, root, options: seen.append(dict(options.extra)) or load(self, root, options))
    spec = RunSpec("toy", dataset="toy", subjects=["s0", "s1"],
                   overrides=["train.epochs=1", "data.options.apex=spotting"])
    options = ExecutionOptions(tracking=False, cache_dir=tmp_path, progress=False)
    run(spec, options, registry=toy_registry)
    run(replace(spec, dataset_options={"apex": "middle", "rule": "x"}), options, registry=toy_registry)
    assert seen == [{"apex": "spotting"}, {"apex": "middle", "rule": "x"}]


def test_samples_without_the_task_label_are_refused(toy_registry, tmp_path, monkeypatch):
    cls = type(toy_registry.dataset("toy"))
    load = cls.load

    def with_unlabelled(self, root, options):
        data = load(self, root, options)
        data.samples.append(mercore.Sample("toy", "s0", "others", emotion="others"))
        return data

    monkeypatch.setattr(cls, "load", with_unlabelled)
    with pytest.raises(ConfigError, match=r"^1 samples have no megc3 label \(e.g. toy/s0/others\); .*all_emotions"):
        run(RunSpec("toy", dataset="toy"), ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False),
            registry=toy_registry)


def test_results_carry_subject_bootstrap_intervals_and_the_audit_stays_out_of_the_table(toy_registry, tmp_path):
    from mercore.evaluation.statistics import jackknife_intervals
    from mercore.reporting.artifacts import metrics_table

    result = run(RunSpec("toy", dataset="toy", profile="quick", overrides={"evaluation.bootstrap.resamples": 500},
                         subjects=["s0", "s1", "s2"]),
                 ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False), registry=toy_registry)
    iv = result.intervals()
    y_true = [t for f in result.folds for t in f.y_true]
    y_pred = [p for f in result.folds for p in f.y_pred]
    groups = [g for f in result.folds for g in f.subjects]
    assert iv == jackknife_intervals(y_true, y_pred, groups, 3)  # the default interval (evaluation.interval)
    assert iv["uf1"].low <= result.metrics["uf1"] <= iv["uf1"].high
    summary = json.loads((result.run_dir / "artifacts" / "summary.json").read_text())
    assert summary["overall"]["uf1_ci"] == [iv["uf1"].low, iv["uf1"].high]
    assert summary["bootstrap"]["resamples"] == 500 and summary["bootstrap"]["interval"] == "jackknife_t"
    assert summary["leaky_test_selected_epoch"]["note"].startswith("not a result")
    table = metrics_table(result)
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert not any("LEAKY" in row for row in rows)  # the audit is printed below the table, not in it
    assert table.splitlines()[-1].startswith("LEAKY") and "not a result: shows how much test-epoch" in table
    assert str(iv["uf1"]) in rows[2]
    # the number of resamples does not change predictions, so it does not make a new run folder
    other = run(RunSpec("toy", dataset="toy", profile="quick", subjects=["s0", "s1", "s2"]),
                ExecutionOptions(cache_dir=tmp_path, progress=False, tracking=False), registry=toy_registry)
    assert other.run_dir == result.run_dir and other.reused_folds == 3


def test_seeds_run_once_per_seed_resume_per_seed_and_fold_and_aggregate(toy_registry, tmp_path, mlflow_uri,
                                                                        monkeypatch):
    import mlflow
    from click.testing import CliRunner

    import mercore.runner
    from mercore.cli import cli

    spec = RunSpec("toy", dataset="toy", subjects=["s0", "s1", "s2"], profile="quick", overrides=["run.seed=1"])
    tracked = ExecutionOptions(cache_dir=tmp_path, progress=False, tracking_uri=mlflow_uri, experiment="seeds")
    single = run(spec, replace(tracked, tracking=False), registry=toy_registry)
    from mercore.runner import run_seeds

    multi = run_seeds(replace(spec, seeds=2), tracked, registry=toy_registry)
    assert multi.seeds == [1, 2]
    assert multi.runs[0].run_dir == single.run_dir and multi.runs[0].reused_folds == 3  # (seed 1, fold) reused
    assert multi.runs[1].reused_folds == 0
    summary = json.loads((multi.run_dir / "artifacts" / "summary.json").read_text())
    assert [s["seed"] for s in summary["per_seed"]] == [1, 2]
    values = [r.metrics["uf1"] for r in multi.runs]
    assert summary["overall"]["uf1_mean"] == pytest.approx(sum(values) / 2)
    assert summary["overall"]["uf1_std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    assert "mean +- std" in (multi.run_dir / "artifacts" / "report.md").read_text()
    client = mlflow.tracking.MlflowClient(mlflow_uri)
    parent = client.get_run(multi.mlflow_run_id)
    assert parent.data.metrics["seed2_uf1"] == pytest.approx(values[1])
    assert parent.data.metrics["uf1_mean"] == pytest.approx(summary["overall"]["uf1_mean"])
    assert "uf1_mean_ci_low" in parent.data.metrics and parent.data.tags["mer.run_dir"] == str(multi.run_dir)
    exp = client.get_experiment_by_name("seeds")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{multi.mlflow_run_id}'")
    assert sorted(c.info.run_id for c in children) == sorted(r.mlflow_run_id for r in multi.runs)
    assert "uf1_ci_low" in children[0].data.metrics
    # a rerun resumes the seeds' parent run and each seed's run
    again = run_seeds(replace(spec, seeds=2), tracked, registry=toy_registry)
    assert again.mlflow_run_id == multi.mlflow_run_id
    assert [r.mlflow_run_id for r in again.runs] == [r.mlflow_run_id for r in multi.runs]
    # the CLI: a list of seeds; everything is reused now
    monkeypatch.setattr(mercore.runner, "load_method", lambda reg, name: (toy_registry, toy_registry.method(name)))
    out = CliRunner().invoke(cli, ["run", "--plugin", "toy", "--dataset", "toy", "--subjects", "s0", "--subjects", "s1",
                                   "--subjects", "s2", "--profile", "quick", "--seeds", "1,2", "--no-tracking",
                                   "--cache-dir", str(tmp_path), "-q"])
    assert out.exit_code == 0, out.output
    assert "6 fold(s) reused" in out.output and "| mean +- std |" in out.output
    base = again.first.baseline_scores()
    assert f"| majority baseline | {base.uf1:.4f} | - | {base.uar:.4f} | - | {base.acc:.4f} |" in out.output
    bad = CliRunner().invoke(cli, ["run", "--plugin", "toy", "--seeds", "two"])
    assert bad.exit_code != 0 and "give a count such as 3 or a list" in bad.output
