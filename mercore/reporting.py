"""Run artifacts: per-sample predictions, summary table, confusion-matrix images."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .evaluation.results import RunResult
from .io import atomic_write_bytes, atomic_write_text
from .metrics import Scores


def summary(result: RunResult) -> dict[str, Any]:
    """Metrics of the run as plain data: overall, per dataset, majority baseline."""
    def block(s: Scores) -> dict[str, Any]:
        return {**s.as_dict(), "n": s.n,
                "per_class_recall": dict(zip(result.class_names, s.per_class_recall)),
                "per_class_f1": dict(zip(result.class_names, s.per_class_f1)),
                "confusion": s.confusion.tolist()}
    return {
        "method": result.method, "variant": result.variant, "dataset": result.dataset, "task": result.task,
        "profile": result.config.get("meta", {}).get("profile"), "classes": list(result.class_names),
        "folds": len(result.folds), "samples": sum(len(f.keys) for f in result.folds),
        "overall": block(result.scores()),
        "per_dataset": {d: block(s) for d, s in result.per_dataset().items()} if len(result.datasets) > 1 else {},
        "majority_baseline": result.baseline_scores().as_dict(),
        "leaky_test_selected_epoch": (result.leaky_scores().as_dict() if result.leaky_scores() else None),
        "per_subject_accuracy": result.per_subject_accuracy(),
        "pooling": "predictions of all folds pooled before computing UF1/UAR (MEGC2019)",
        "environment": result.environment,
        "skipped": result.skipped,
    }


def metrics_table(result: RunResult) -> str:
    """A Markdown table of UF1 / UAR / Acc / weighted F1, overall, per dataset and for the baseline."""
    rows = [("all" if len(result.datasets) > 1 else result.dataset, result.scores())]
    if len(result.datasets) > 1:
        rows += list(result.per_dataset().items())
    rows.append(("majority baseline", result.baseline_scores()))
    leaky = result.leaky_scores()
    if leaky is not None:
        rows.append(("LEAKY: best epoch on test subject", leaky))
    lines = ["| data | n | UF1 | UAR | Acc | weighted F1 |", "|---|---:|---:|---:|---:|---:|"]
    for name, s in rows:
        lines.append(f"| {name} | {s.n} | {s.uf1:.4f} | {s.uar:.4f} | {s.acc:.4f} | {s.weighted_f1:.4f} |")
    return "\n".join(lines)


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
    put("summary.md", f"# {title}\n\nLOSO, {len(result.folds)} folds, predictions pooled over folds.\n\n"
                      f"{metrics_table(result)}\n")
    put("confusion_matrix.png", confusion_png(result.scores().confusion, result.class_names, title))
    if result.skipped:
        put("skipped.txt", "".join(f"{line}\n" for line in result.skipped))
    if len(result.datasets) > 1:
        for d, s in result.per_dataset().items():
            put(f"confusion_matrix_{d}.png", confusion_png(s.confusion, result.class_names, f"{result.method} on {d}"))
    return paths
