"""Results of one fold and of a whole run; fold results are written atomically for resume."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_bytes
from ..metrics import Scores, scores


@dataclass
class FoldResult:
    """Predictions for the held-out subject(s) of one fold, plus its training history."""

    index: int
    fold: str
    keys: list[str]
    datasets: list[str]
    subjects: list[str]
    y_true: list[int]
    y_pred: list[int]
    probabilities: list[list[float]]
    baseline_pred: list[int]
    history: list[tuple[str, float, int]] = field(default_factory=list)
    seconds: float = 0.0
    #: CPU time of the fold's process (all its threads): what a fold costs on a machine of its own
    cpu_seconds: float = 0.0
    checkpoint: str | None = None
    n_train: int = 0
    n_val: int = 0
    peak_gpu_memory_mb: float | None = None
    #: files the stages wrote for the tracker (``StageContext.log_artifact``), absolute paths
    artifacts: list[str] = field(default_factory=list)
    #: leakage audit: "stage:epoch" -> test predictions after that epoch (empty unless enabled)
    audit: dict[str, list[int]] = field(default_factory=dict)
    #: what the fold was computed under (``mercore.evaluation.identity``); reused only while it holds
    identity: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, json.dumps(asdict(self)).encode())

    @classmethod
    def load(cls, path: Path) -> "FoldResult | None":
        """The stored fold, or None if it is missing or unreadable (then the fold is redone)."""
        try:
            data = json.loads(path.read_text())
            data["history"] = [tuple(h) for h in data.get("history", [])]
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


@dataclass
class RunResult:
    """Pooled predictions of all folds and the metrics computed from them."""

    method: str
    variant: str | None
    dataset: str
    task: str
    class_names: tuple[str, ...]
    config: dict[str, Any]
    folds: list[FoldResult]
    run_dir: Path
    reused_folds: int = 0
    #: why the folds that were not reused were computed ("not run before", "labels of X changed") -> count
    recomputed: dict[str, int] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    #: software versions the run was computed with (``mercore.environment.software_versions``)
    environment: dict[str, str] = field(default_factory=dict)
    #: annotation rows left out by ``--skip-invalid``, each naming its file, row and reason
    skipped: list[str] = field(default_factory=list)

    def _pooled(self, attr: str, dataset: str | None = None) -> tuple[list[int], list[int]]:
        y_true, y_pred = [], []
        for f in self.folds:
            for d, t, p in zip(f.datasets, f.y_true, getattr(f, attr)):
                if dataset is None or d == dataset:
                    y_true.append(t)
                    y_pred.append(p)
        return y_true, y_pred

    def scores(self, dataset: str | None = None) -> Scores:
        return scores(*self._pooled("y_pred", dataset), len(self.class_names))

    def baseline_scores(self, dataset: str | None = None) -> Scores:
        """Majority class of each fold's training labels, pooled the same way."""
        return scores(*self._pooled("baseline_pred", dataset), len(self.class_names))

    @property
    def metrics(self) -> dict[str, float]:
        return self.scores().as_dict()

    @property
    def baseline(self) -> dict[str, float]:
        return self.baseline_scores().as_dict()

    @property
    def datasets(self) -> list[str]:
        return sorted({d for f in self.folds for d in f.datasets})

    def leaky_scores(self) -> Scores | None:
        """What a test-subject epoch selection would report: per fold, the audited epoch with the
        most correct test predictions. Shown only to expose that inflation, never as the result."""
        if not all(f.audit for f in self.folds):
            return None
        y_true, y_pred = [], []
        for f in self.folds:
            best = max(f.audit.values(), key=lambda pred: sum(int(t == p) for t, p in zip(f.y_true, pred)))
            y_true += f.y_true
            y_pred += best
        return scores(y_true, y_pred, len(self.class_names))

    def per_dataset(self) -> dict[str, Scores]:
        return {d: self.scores(d) for d in self.datasets}

    def per_subject_accuracy(self) -> dict[str, float]:
        out = {}
        for f in self.folds:
            out[f.fold] = float(np.mean(np.equal(f.y_true, f.y_pred))) if f.y_true else float("nan")
        return out

    def prediction_rows(self) -> list[dict[str, Any]]:
        rows = []
        for f in self.folds:
            for i, key in enumerate(f.keys):
                row = {"fold": f.fold, "key": key, "dataset": f.datasets[i], "subject": f.subjects[i],
                       "label": self.class_names[f.y_true[i]], "prediction": self.class_names[f.y_pred[i]],
                       "correct": int(f.y_true[i] == f.y_pred[i])}
                row.update({f"p_{c}": round(p, 6) for c, p in zip(self.class_names, f.probabilities[i])})
                rows.append(row)
        return rows
