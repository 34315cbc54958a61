"""`mer tune`: the outer test subject never reaches an inner fit or score; a killed tune resumes."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import mercore
from mercore import SupervisedTrainer
from mercore.cli import cli
from mercore.compare import describe
from mercore.config import ConfigError, resolve_config
from mercore.spec import ExecutionOptions, RunSpec
from mercore.tuning import check_space, load_space, parse_space, tune

optuna = pytest.importorskip("optuna")

SUBJECTS = ["s0", "s1", "s2", "s3"]
SPACE = {"train.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-1, "log": True},
         "model.hidden": {"type": "categorical", "choices": [4, 16]}}


class Killed(Exception):
    """Stands for the process being killed in the middle of a trial."""


class Recorder(mercore.Trainer):
    """A first stage that writes down which subjects each fit sees in its train, val and test parts."""

    fits: list[dict] = []
    kill_at: int | None = None

    def fit(self, model, data, ctx):
        Recorder.fits.append({"dir": str(ctx.work_dir), "train": set(data.train.groups),
                              "val": set(data.val.groups) if data.val is not None else set(),
                              "test": set(data.test.groups), "test_groups": set(data.test_groups)})
        if Recorder.kill_at is not None and len(Recorder.fits) == Recorder.kill_at:
            raise Killed()
        return model


@pytest.fixture
def recorded(toy_registry, monkeypatch):
    Recorder.fits, Recorder.kill_at = [], None
    monkeypatch.setattr(type(toy_registry.method("toy")), "stages",
                        lambda self, config: [Recorder(), SupervisedTrainer.from_config(config["train"])])
    return Recorder


def _tune(registry, cache, *, overrides=(), workers=0, **kwargs):
    spec = RunSpec("toy", dataset="toy", subjects=SUBJECTS, profile="quick", overrides=overrides)
    options = ExecutionOptions(tracking=False, cache_dir=cache, progress=False, workers=workers)
    return tune(spec, options, registry=registry, **{"space": parse_space(SPACE), "trials": 3, "inner_folds": 2,
                                                     **kwargs})


def _outer_index(path: str) -> tuple[str, int]:
    """("inner", i) for a trial's fit under outer/NNN, ("final", i) for an outer fold's final fit."""
    inner = re.search(r"/outer/(\d{3})/trial-\d{4}/folds/", path)
    if inner:
        return "inner", int(inner.group(1))
    return "final", int(re.search(r"/folds/(\d{3})$", path).group(1))


def test_outer_test_subject_never_enters_an_inner_fit_or_score(toy_registry, recorded, tmp_path):
    outcome = _tune(toy_registry, tmp_path, overrides={"validation.subjects": 0.5}, inner_folds=2)
    outer_subjects = [f"toy/{s}" for s in SUBJECTS]
    assert len(recorded.fits) == 4 * (3 * 2 + 1)
    finals = 0
    for fit in recorded.fits:
        kind, index = _outer_index(fit["dir"])
        held_out = outer_subjects[index]
        seen = fit["train"] | fit["val"] | fit["test"]
        if kind == "inner":  # fitted, validated and scored on the outer fold's training subjects only
            assert held_out not in seen, fit
            assert seen == set(outer_subjects) - {held_out}
            assert fit["test_groups"] == fit["test"]
        else:  # the outer test subject: predicted once, by a model fitted on all the others
            finals += 1
            assert fit["test"] == {held_out} and held_out not in fit["train"] | fit["val"]
    assert finals == 4
    assert [f.fold for f in outcome.result.folds] == outer_subjects
    assert [set(f.subjects) for f in outcome.result.folds] == [{s} for s in outer_subjects]
    assert outcome.fits == 28 and all(c.trials_complete == 3 for c in outcome.choices)
    for choice in outcome.choices:  # the chosen values are a finished trial's, the best on the inner score
        study = optuna.load_study(study_name=f"outer-{choice.index:03d}",
                                  storage=f"sqlite:///{outcome.tune_dir / 'optuna.db'}")
        assert choice.values == study.best_params and choice.inner_uf1 == study.best_value
    iv = outcome.result.intervals()
    summary = json.loads((outcome.tune_dir / "artifacts" / "tune.json").read_text())
    assert summary["outer_result"]["uf1_ci"] == [iv["uf1"].low, iv["uf1"].high]
    assert summary["cost"]["fits"] == 28 and len(summary["outer"]) == 4
    assert "tuned by mer tune (3 trials x 2 inner folds)" in describe(outcome.result)
    assert "Nested tuning (mer tune): per outer fold 3 trials" in (outcome.tune_dir / "artifacts" / "report.md").read_text()


def test_killed_tune_resumes_without_redoing_finished_trials(toy_registry, recorded, tmp_path):
    recorded.kill_at = 10  # outer fold 0 done (3 trials x 2 inner fits + 1 final), fold 1: trial 0 done, trial 1 killed
    with pytest.raises(Killed):
        _tune(toy_registry, tmp_path)
    first = list(recorded.fits)
    storage = next((tmp_path / "tunes").iterdir()) / "optuna.db"
    study = optuna.load_study(study_name="outer-001", storage=f"sqlite:///{storage}")
    done_before = {t.number: t.params for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(done_before) == 1
    study.ask()  # a trial a SIGKILL would leave RUNNING: must be set aside, not counted as finished
    recorded.fits, recorded.kill_at = [], None
    outcome = _tune(toy_registry, tmp_path)
    again = [_outer_index(f["dir"]) for f in recorded.fits]
    assert ("inner", 0) not in again and ("final", 0) not in again  # outer fold 0 reused entirely
    assert again.count(("inner", 1)) == 2 * 2 and again.count(("final", 1)) == 1  # only the 2 missing trials
    assert len(recorded.fits) == 28 - 9
    study = optuna.load_study(study_name="outer-001", storage=f"sqlite:///{storage}")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert states.count(optuna.trial.TrialState.RUNNING) == 0 and states.count(optuna.trial.TrialState.FAIL) == 2
    assert all(study.trials[n].params == p for n, p in done_before.items())
    assert len(first) == 10 and outcome.choices[1].trials_failed == 2


def test_cli_tune_logs_nested_trials_and_writes_a_usable_profile(toy_registry, tmp_path, mlflow_uri, monkeypatch):
    import mlflow

    import mercore.runner

    monkeypatch.setattr(mercore.runner, "load_method", lambda reg, name: (toy_registry, toy_registry.method(name)))
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE))
    profile = tmp_path / "tuned.yaml"
    args = ["tune", "--plugin", "toy", "--dataset", "toy", "--space", str(space), "--trials", "2", "--inner-folds", "2",
            "--profile", "quick", "--cache-dir", str(tmp_path / "cache"), "--tracking-uri", mlflow_uri,
            "--experiment", "tune", "--write-profile", str(profile), "--workers", "0", "-q"]
    for s in SUBJECTS[:3]:
        args += ["--subjects", s]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "3 outer folds x (2 trials x 2 inner folds + 1) = 15 fits" in out.output
    assert "| most chosen / median |" in out.output and "UF1 95% CI" in out.output
    written = yaml.safe_load(profile.read_text())
    assert set(written) == {"train", "model"} and written["model"]["hidden"] in (4, 16)
    assert resolve_config(toy_registry.method("toy"), profile="quick", config_file=profile)["model"]["hidden"] == \
        written["model"]["hidden"]
    client = mlflow.tracking.MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("tune")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    outer = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(outer) == 3 and all("chosen.train.lr" in r.data.params for r in outer)
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in {o.info.run_id for o in outer}]
    assert len(trials) == 3 * 2 and all("inner_uf1" in t.data.metrics for t in trials)
    assert "uf1_ci_low" in parent.data.metrics and Path(parent.data.tags["mer.run_dir"]).is_dir()


def test_search_space_errors_are_clear(tmp_path, toy_registry):
    bad = {
        "train.lr: {type: float, low: 0.1, high: 0.01}": "low (0.1) must be below high (0.01)",
        "train.lr: {type: gaussian}": "type float, int or categorical",
        "train.lr: {type: float, low: 0, high: 1, log: true}": "a log scale needs low > 0",
        "train.lr: {type: float, low: 0.1, high: 1, logg: true}": "unknown field(s) logg",
        "model.hidden: {type: categorical, choices: []}": "choices must be a non-empty list",
        "model.hidden: {type: categorical, choices: [[1, 2]]}": "choices must be scalars",
        "model.hidden: {type: int, low: 1.5, high: 4}": "whole-number",
        "[1, 2]": "expected a mapping",
    }
    for text, message in bad.items():
        path = tmp_path / "space.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_space(path)
    with pytest.raises(ConfigError, match="search space file not found"):
        load_space(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.lrr' \(in the search space\)"):
        _tune(toy_registry, tmp_path, space=parse_space({"train.lrr": {"type": "float", "low": 0.1, "high": 1}}))
    with pytest.raises(ConfigError, match=r"config key 'train' \(in the search space\) is a section"):
        _tune(toy_registry, tmp_path, space=parse_space({"train": {"type": "categorical", "choices": [1]}}))
    with pytest.raises(ConfigError, match=r"--inner-folds 4: must be between 2 and .* \(3\)"):
        _tune(toy_registry, tmp_path, inner_folds=4)


def test_an_int_range_fits_an_int_key_and_a_float_range_does_not(toy_registry):
    """A space is checked against the config with a value of the type its trials suggest."""
    config = resolve_config(toy_registry.method("toy"), profile="quick")
    check_space(config, parse_space({"train.epochs": {"type": "int", "low": 50, "high": 200, "step": 50}}))
    with pytest.raises(ConfigError, match=r"config key 'train.epochs' \(in the search space\): expected an integer"):
        check_space(config, parse_space({"train.epochs": {"type": "float", "low": 1, "high": 3}}))


def test_missing_optuna_is_a_clear_error(toy_registry, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(RuntimeError, match=r"pip install 'mercore\[tune\]'"):
        _tune(toy_registry, tmp_path)


def test_parallel_outer_folds_give_the_sequential_result(toy_registry, tmp_path):
    sequential = _tune(toy_registry, tmp_path / "a")
    parallel = _tune(toy_registry, tmp_path / "b", workers=2)
    assert [c.values for c in parallel.choices] == [c.values for c in sequential.choices]
    assert [f.y_pred for f in parallel.result.folds] == [f.y_pred for f in sequential.result.folds]
