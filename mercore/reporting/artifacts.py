"""Run artifacts: per-sample predictions, summary table, confusion-matrix images."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..evaluation.results import RunResult, SeedsResult
from ..evaluation.statistics import FEW_SUBJECTS, INTERVALS, LEVEL, Interval
from ..io import atomic_write_bytes, atomic_write_text
from ..metrics import Scores

LEAKY_LABEL = "not a result: shows how much test-epoch selection would inflate this figure"


def bootstrap_note(result: RunResult) -> dict[str, Any]:
    """How the intervals were computed, for summary.json."""
    return {**result.bootstrap, "level": LEVEL, "interval": result.interval_method,
            "method": INTERVALS[result.interval_method]}


def result_warnings(result: RunResult) -> list[str]:
    """What a reader must know before trusting the figure: too few subjects for the interval, a
    result no better than the majority-class baseline, a model that predicts one class for all."""
    found = []
    if result.subjects < FEW_SUBJECTS:
        found.append(f"only {result.subjects} subjects; below about {FEW_SUBJECTS} no interval over subjects holds "
                     f"its 95% (benchmarks/interval_coverage.md): read it as a rough range")
    ours, base = result.scores(), result.baseline_scores()
    if ours.uf1 <= base.uf1 or ours.uar <= base.uar:
        found.append(f"UF1 {ours.uf1:.4f} / UAR {ours.uar:.4f} is not above the majority-class baseline "
                     f"({base.uf1:.4f} / {base.uar:.4f}): this model has learned nothing usable")
    predicted = {p for f in result.folds for p in f.y_pred}
    if len(predicted) == 1 and len(result.class_names) > 1:
        found.append(f"every clip is predicted {result.class_names[predicted.pop()]!r}: the model outputs one class")
    return found


def overrides_text(result: RunResult) -> str:
    """The run's ``--config`` / ``--set`` changes to its profile's config ("none"); ``run.seed`` is
    left out, as every listing shows the seed already."""
    shown = [o for o in result.overrides if not o.startswith("--set run.seed=")]
    return " ".join(shown) or "none"


def interval_lines(result: RunResult) -> list[str]:
    """How the intervals were computed, then every warning (:func:`result_warnings`)."""
    how = INTERVALS[result.interval_method]
    if result.interval_method == "percentile":
        how += f", {result.bootstrap['resamples']} resamples, seed {result.bootstrap['seed']}"
    return [f"95% CI: {how}.", *(f"WARNING: {w}." for w in result_warnings(result))]


def summary(result: RunResult) -> dict[str, Any]:
    """Metrics of the run as plain data: overall, per dataset (each with its 95 % interval), majority
    baseline; the leaky audit figure apart, labelled as not a result."""
    def block(s: Scores, intervals: dict[str, Interval]) -> dict[str, Any]:
        return {**s.as_dict(), "n": s.n, **{f"{k}_ci": v.as_list() for k, v in intervals.items()},
                "per_class_recall": dict(zip(result.class_names, s.per_class_recall)),
                "per_class_f1": dict(zip(result.class_names, s.per_class_f1)),
                "confusion": s.confusion.tolist()}
    leaky = result.leaky_scores()
    return {
        "method": result.method, "variant": result.variant, "dataset": result.dataset, "task": result.task,
        "profile": result.config.get("meta", {}).get("profile"), "overrides": result.overrides,
        "classes": list(result.class_names),
        "folds": len(result.folds), "samples": sum(len(f.keys) for f in result.folds),
        "overall": block(result.scores(), result.intervals()),
        "per_dataset": ({d: block(s, result.intervals(d)) for d, s in result.per_dataset().items()}
                        if len(result.datasets) > 1 else {}),
        "bootstrap": bootstrap_note(result),
        "majority_baseline": result.baseline_scores().as_dict(),
        "leaky_test_selected_epoch": ({**leaky.as_dict(), "note": LEAKY_LABEL} if leaky else None),
        "per_subject_accuracy": result.per_subject_accuracy(),
        "pooling": "predictions of all folds pooled before computing UF1/UAR (MEGC2019)",
        "warnings": result_warnings(result),
        "environment": result.environment,
        "skipped": result.skipped,
    }


def metrics_table(result: RunResult) -> str:
    """A Markdown table of UF1 / UAR (with 95 % subject-bootstrap intervals), Acc and weighted F1,
    overall, per dataset and for the baseline; the leakage audit follows below it, never in it."""
    rows: list[tuple[str, Scores, dict[str, Interval] | None]] = [
        ("all" if len(result.datasets) > 1 else result.dataset, result.scores(), result.intervals())]
    if len(result.datasets) > 1:
        rows += [(d, s, result.intervals(d)) for d, s in result.per_dataset().items()]
    rows.append(("majority baseline", result.baseline_scores(), None))
    lines = ["| data | n | UF1 | UF1 95% CI | UAR | UAR 95% CI | Acc | weighted F1 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s, iv in rows:
        ci = {k: str(v) for k, v in iv.items()} if iv else {"uf1": "-", "uar": "-"}
        lines.append(f"| {name} | {s.n} | {s.uf1:.4f} | {ci['uf1']} | {s.uar:.4f} | {ci['uar']} | {s.acc:.4f} "
                     f"| {s.weighted_f1:.4f} |")
    lines.append("\n" + "\n".join(interval_lines(result)))
    leaky = leaky_line(result)
    if leaky:
        lines.append(leaky)
    return "\n".join(lines)


def leaky_line(result: RunResult) -> str | None:
    """The leakage audit as one line below the results: what a test-selected epoch would report."""
    leaky = result.leaky_scores()
    if leaky is None:
        return None
    honest = result.scores()
    return (f"LEAKY, best epoch on the test subject ({LEAKY_LABEL}): UF1 {leaky.uf1:.4f} "
            f"({leaky.uf1 - honest.uf1:+.4f}), UAR {leaky.uar:.4f} ({leaky.uar - honest.uar:+.4f})")


def seeds_summary(result: SeedsResult) -> dict[str, Any]:
    """Each seed's pooled UF1 / UAR with its interval, mean +- std over seeds, and the interval of
    the seed mean (every resample of subjects scores all seeds)."""
    def spread(dataset: str | None) -> dict[str, Any]:
        stats = result.spread(dataset)
        intervals = result.intervals(dataset)
        return {**{f"{k}_mean": m for k, (m, _) in stats.items()}, **{f"{k}_std": sd for k, (_, sd) in stats.items()},
                **{f"{k}_mean_ci": v.as_list() for k, v in intervals.items()}}
    first = result.first
    per_seed = []
    for r in result.runs:
        s, iv = r.scores(), r.intervals()
        per_seed.append({"seed": r.seed, "run_dir": r.run_dir.name, "uf1": s.uf1, "uar": s.uar, "acc": s.acc,
                         "uf1_ci": iv["uf1"].as_list(), "uar_ci": iv["uar"].as_list(),
                         "mlflow_run_id": r.mlflow_run_id})
    return {
        "method": first.method, "variant": first.variant, "dataset": first.dataset, "task": first.task,
        "profile": first.config.get("meta", {}).get("profile"), "seeds": result.seeds,
        "folds": len(first.folds), "samples": sum(len(f.keys) for f in first.folds),
        "per_seed": per_seed, "overall": spread(None),
        "per_dataset": {d: spread(d) for d in result.datasets} if len(result.datasets) > 1 else {},
        "std": "sample standard deviation over seeds (ddof 1)",
        "bootstrap": bootstrap_note(first),
    }


def seeds_table(result: SeedsResult) -> str:
    """Markdown: one row per seed (UF1 / UAR with intervals), then mean +- std and the seed-mean interval."""
    lines = ["| seed | UF1 | UF1 95% CI | UAR | UAR 95% CI | Acc |", "|---|---:|---:|---:|---:|---:|"]
    for r in result.runs:
        s, iv = r.scores(), r.intervals()
        lines.append(f"| {r.seed} | {s.uf1:.4f} | {iv['uf1']} | {s.uar:.4f} | {iv['uar']} | {s.acc:.4f} |")
    stats, iv = result.spread(), result.intervals()
    lines.append("| mean +- std | " + " | ".join(
        f"{stats[k][0]:.4f} +- {stats[k][1]:.4f} | {iv[k]}" if k in iv else f"{stats[k][0]:.4f} +- {stats[k][1]:.4f}"
        for k in ("uf1", "uar", "acc")) + " |")
    base = result.first.baseline_scores()  # the same for every seed: it depends on the training labels only
    lines.append(f"| majority baseline | {base.uf1:.4f} | - | {base.uar:.4f} | - | {base.acc:.4f} |")
    lines.append("\nstd over seeds (ddof 1); the interval of the mean scores every seed on each resample or "
                 "left-out subject. " + " ".join(interval_lines(result.first)))
    return "\n".join(lines)


def write_seed_artifacts(result: SeedsResult, folder: Path) -> list[Path]:
    """``seeds.json`` (the seeds' run folders, for :func:`mercore.reporting.html.load_result`) and the
    aggregate summary; return the artifact paths."""
    atomic_write_text(folder / "seeds.json", json.dumps(
        {"seeds": result.seeds, "runs": [r.run_dir.name for r in result.runs]}, indent=2))
    out = folder / "artifacts"
    first = result.first
    title = f"{first.method} on {first.dataset} ({first.task}), seeds {', '.join(map(str, result.seeds))}"
    atomic_write_text(out / "summary.json", json.dumps(seeds_summary(result), indent=2))
    atomic_write_text(out / "summary.md", f"# {title}\n\nLOSO, {len(first.folds)} folds, predictions pooled over "
                                          f"folds, once per seed.\n\n{seeds_table(result)}\n")
    return [out / "summary.json", out / "summary.md"]


def confusion_png(cm: np.ndarray, classes: tuple[str, ...], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2, 1.2 * len(classes) + 1.5), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title)
    top = cm.max() if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > top / 2 else "black")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_artifacts(result: RunResult, out_dir: Path) -> list[Path]:
    """Write config, predictions, summary and confusion matrices into ``out_dir``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    def put(name: str, data: bytes | str) -> None:
        path = out_dir / name
        atomic_write_bytes(path, data) if isinstance(data, bytes) else atomic_write_text(path, data)
        paths.append(path)

    put("config.yaml", yaml.safe_dump(result.config, sort_keys=False))
    rows = result.prediction_rows()
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    put("predictions.csv", buf.getvalue())
    put("summary.json", json.dumps(summary(result), indent=2))
    title = f"{result.method} on {result.dataset} ({result.task})"
    put("summary.md", f"# {title}\n\nLOSO, {len(result.folds)} folds, predictions pooled over folds. Profile "
                      f"`{result.config.get('meta', {}).get('profile')}`, overrides: `{overrides_text(result)}`.\n\n"
                      f"{metrics_table(result)}\n")
    put("confusion_matrix.png", confusion_png(result.scores().confusion, result.class_names, title))
    if result.skipped:
        put("skipped.txt", "".join(f"{line}\n" for line in result.skipped))
    if len(result.datasets) > 1:
        for d, s in result.per_dataset().items():
            put(f"confusion_matrix_{d}.png", confusion_png(s.confusion, result.class_names, f"{result.method} on {d}"))
    return paths
