"""``mer ensemble``: one result from several runs over the same clips and folds, by averaging their
per-clip class probabilities with equal weights.

A single last-epoch model is one draw of a noisy training: averaging the predictions of several
seeds of a method, or of several methods, is the field's honest remedy for that variance. It is
leak-free when every member is: each clip's members were trained without its subject, and the
weights are fixed (equal) rather than fitted on test predictions. The ensemble is a run like any
other: a run folder with fold records, summary, intervals and report, usable by ``mer compare``
and ``mer report``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .evaluation.results import FoldResult, RunResult, SeedsResult, differing_samples


class EnsembleError(ValueError):
    """Runs that cannot be combined; the message says what differs."""


def members_of(results: Sequence[RunResult | SeedsResult]) -> list[RunResult]:
    """The runs behind ``results`` (a ``--seeds`` folder stands for each of its seeds)."""
    runs: list[RunResult] = []
    for result in results:
        runs.extend(result.runs if isinstance(result, SeedsResult) else [result])
    return runs


def label(run: RunResult) -> str:
    """``method:variant:seed``, how a member is named in the ensemble's config."""
    return f"{run.method}:{run.variant or '-'}:seed{run.seed}"


def check_members(runs: Sequence[RunResult]) -> None:
    """Refuse anything but runs of one task over the same clips, labels and folds."""
    if len(runs) < 2:
        raise EnsembleError(f"an ensemble needs at least two runs, got {len(runs)}")
    first = runs[0]
    folders = [str(Path(r.run_dir).resolve()) for r in runs]
    if len(set(folders)) < len(folders):
        raise EnsembleError("the same run is named twice: " + ", ".join(sorted({f for f in folders if folders.count(f) > 1})))
    fold_of = {k: f.fold for f in first.folds for k in f.keys}
    truth = {k: t for f in first.folds for k, t in zip(f.keys, f.y_true)}
    for i, run in enumerate(runs[1:], 2):
        if run.task != first.task or run.class_names != first.class_names:
            raise EnsembleError(f"run {i} ({label(run)}) is task {run.task} {list(run.class_names)}, run 1 task "
                                f"{first.task} {list(first.class_names)}: combine runs of one task")
        diff = differing_samples(fold_of, {k for f in run.folds for k in f.keys}, ("run 1", f"run {i}"))
        if diff:
            raise EnsembleError(f"runs over different samples: {diff}")
        for f in run.folds:
            for k, t in zip(f.keys, f.y_true):
                if fold_of[k] != f.fold:
                    raise EnsembleError(f"run {i} ({label(run)}) tests {k} in fold {f.fold}, run 1 in fold "
                                        f"{fold_of[k]}: combine runs with the same folds")
                if truth[k] != t:
                    raise EnsembleError(f"run {i} ({label(run)}) labels {k} {run.class_names[t]}, run 1 "
                                        f"{first.class_names[truth[k]]}")


def ensemble(results: Sequence[RunResult | SeedsResult], run_dir: Path | None = None) -> RunResult:
    """The equal-weight mean of the members' class probabilities, fold by fold in the first run's
    order; the prediction is its arg-max. ``run_dir`` defaults to a folder named by the members."""
    runs = members_of(results)
    check_members(runs)
    first = runs[0]
    probs = [{k: p for f in r.folds for k, p in zip(f.keys, f.probabilities)} for r in runs]
    seconds: dict[str, float] = {}
    for r in runs:
        for f in r.folds:
            seconds[f.fold] = seconds.get(f.fold, 0.0) + f.seconds
    folds = []
    for f in first.folds:
        mean = np.mean([[table[k] for k in f.keys] for table in probs], axis=0)  # (samples, classes)
        folds.append(FoldResult(
            index=f.index, fold=f.fold, keys=list(f.keys), datasets=list(f.datasets), subjects=list(f.subjects),
            y_true=list(f.y_true), y_pred=[int(i) for i in mean.argmax(1)],
            probabilities=[[float(v) for v in row] for row in mean], baseline_pred=list(f.baseline_pred),
            seconds=seconds[f.fold], n_train=f.n_train, n_val=f.n_val))
    names = [label(r) for r in runs]
    seeds = {r.seed for r in runs}
    config = {
        "ensemble": {"members": names, "weights": "equal", "combine": "mean of class probabilities",
                     "member_run_dirs": [Path(r.run_dir).name for r in runs],
                     "member_revisions": sorted({r.environment.get("git_commit", "not recorded") for r in runs})},
        "run": {"seed": seeds.pop() if len(seeds) == 1 else first.seed},
        "evaluation": first.config.get("evaluation", {}),
        "meta": {"profile": first.config.get("meta", {}).get("profile")},
    }
    methods = sorted({r.method for r in runs})
    key = hashlib.sha256(json.dumps(sorted(names) + sorted(config["ensemble"]["member_run_dirs"])).encode()).hexdigest()[:12]
    folder = Path(run_dir) if run_dir else Path(".mer") / "ensembles" / f"ensemble-{first.dataset}-{key}"
    return RunResult(method="ensemble", variant="+".join(methods) if len(methods) > 1 else f"{methods[0]} seeds",
                     dataset=first.dataset, task=first.task, class_names=first.class_names, config=config,
                     folds=folds, run_dir=folder)


def save(result: RunResult) -> list[Path]:
    """Write the ensemble's run folder: fold records, then the artifacts and report of any run."""
    from .reporting.artifacts import write_artifacts
    from .reporting.html import write_report

    folds_dir = Path(result.run_dir) / "folds"
    folds_dir.mkdir(parents=True, exist_ok=True)
    for f in result.folds:
        f.save(folds_dir / f"{f.index:03d}.json")
    artifacts = Path(result.run_dir) / "artifacts"
    return write_artifacts(result, artifacts) + write_report(result, artifacts)


def with_environment(result: RunResult) -> RunResult:
    """The ensemble with the software that combined it recorded, as every run has."""
    from .environment import software_versions

    return replace(result, environment=software_versions())
