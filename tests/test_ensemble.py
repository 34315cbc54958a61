"""`mer ensemble`: the equal-weight mean of members' probabilities, checked by hand; mismatched runs
refused; the result is a run folder that `mer compare` and `mer report` read."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mercore.cli import cli
from mercore.compare import compare
from mercore.ensemble import EnsembleError, ensemble, save
from mercore.evaluation.results import FoldResult, RunResult, SeedsResult
from mercore.reporting.artifacts import write_artifacts
from mercore.reporting.html import load_run

CLASSES = ("negative", "positive", "surprise")


def make_run(tmp_path: Path, name: str, probs: list[list[float]], *, seed: int = 0, method: str = "m",
             labels: tuple[int, ...] = (0, 1, 2, 0), folds: tuple[str, ...] = ("a", "a", "b", "b"),
             keys: tuple[str, ...] = ("k1", "k2", "k3", "k4"), task: str = "megc3") -> RunResult:
    """Four clips of two subjects, one fold each; the prediction is each row's arg-max."""
    fold_results = []
    for index, fold in enumerate(dict.fromkeys(folds)):
        rows = [i for i, f in enumerate(folds) if f == fold]
        fold_results.append(FoldResult(
            index=index, fold=fold, keys=[keys[i] for i in rows], datasets=["d"] * len(rows),
            subjects=[fold] * len(rows), y_true=[labels[i] for i in rows],
            y_pred=[max(range(3), key=lambda c: probs[i][c]) for i in rows],
            probabilities=[probs[i] for i in rows], baseline_pred=[0] * len(rows)))
    run = RunResult(method, "v", "d", task, CLASSES, {"run": {"seed": seed}, "meta": {"profile": "quick"}},
                    fold_results, tmp_path / name)
    write_artifacts(run, tmp_path / name / "artifacts")
    for f in fold_results:
        (tmp_path / name / "folds").mkdir(parents=True, exist_ok=True)
        f.save(tmp_path / name / "folds" / f"{f.index:03d}.json")
    return run


A = [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7], [0.2, 0.5, 0.3]]
B = [[0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.9, 0.05, 0.05]]


def test_equal_weight_mean_checked_by_hand(tmp_path):
    result = ensemble([make_run(tmp_path, "a", A), make_run(tmp_path, "b", B)], tmp_path / "ens")
    probs = [p for f in result.folds for p in f.probabilities]
    assert probs[0] == pytest.approx([0.4, 0.5, 0.1])  # (0.6 + 0.2) / 2, ...
    assert probs[3] == pytest.approx([0.55, 0.275, 0.175])
    assert [p for f in result.folds for p in f.y_pred] == [1, 1, 2, 0]  # arg-max of the means
    # A alone: 0, 0, 2, 1 (2 of 4 right); B alone: 1, 1, 2, 0 -> the ensemble's 1, 1, 2, 0 (3 of 4)
    assert result.scores().acc == pytest.approx(0.75)
    assert result.config["ensemble"]["members"] == ["m:v:seed0", "m:v:seed0"]


def test_seeds_folder_stands_for_its_seeds(tmp_path):
    seeds = SeedsResult([make_run(tmp_path, "a", A, seed=0), make_run(tmp_path, "b", B, seed=1)], tmp_path)
    result = ensemble([seeds], tmp_path / "ens")
    assert result.config["ensemble"]["members"] == ["m:v:seed0", "m:v:seed1"]
    assert result.variant == "m seeds"


@pytest.mark.parametrize("change, message", [
    ({"keys": ("k1", "k2", "k3", "k9")}, "different samples"),
    ({"folds": ("a", "b", "b", "b")}, "same folds"),
    ({"labels": (0, 1, 2, 1)}, "labels k4"),
    ({"task": "sde5"}, "task"),
])
def test_mismatched_runs_are_refused(tmp_path, change, message):
    with pytest.raises(EnsembleError, match=message):
        ensemble([make_run(tmp_path, "a", A), make_run(tmp_path, "b", B, **change)], tmp_path / "ens")


def test_one_run_or_the_same_run_twice_is_refused(tmp_path):
    a = make_run(tmp_path, "a", A)
    with pytest.raises(EnsembleError, match="at least two"):
        ensemble([a])
    with pytest.raises(EnsembleError, match="named twice"):
        ensemble([a, a])


def test_ensemble_folder_is_a_run_for_compare_and_report(tmp_path):
    a, b = make_run(tmp_path, "a", A), make_run(tmp_path, "b", B)
    save(ensemble([a, b], tmp_path / "ens"))
    loaded = load_run(tmp_path / "ens")
    assert loaded.method == "ensemble" and loaded.scores().acc == pytest.approx(0.75)
    assert compare(a, loaded).parts["d"]["uf1"].delta == pytest.approx(loaded.scores().uf1 - a.scores().uf1)
    out = CliRunner().invoke(cli, ["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--no-tracking",
                                   "--out", str(tmp_path / "cli-ens")])
    assert out.exit_code == 0, out.output
    assert "Acc" in out.output and (tmp_path / "cli-ens" / "artifacts" / "summary.json").is_file()
    bad = CliRunner().invoke(cli, ["ensemble", str(tmp_path / "a"), str(tmp_path / "nowhere"), "--no-tracking"])
    assert bad.exit_code != 0 and "nowhere" in bad.output
    report = CliRunner().invoke(cli, ["report", str(tmp_path / "cli-ens"), "--out", str(tmp_path / "rep")])
    assert report.exit_code == 0, report.output
