"""Results of one fold and of a whole run; fold results are written atomically for resume."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..io import atomic_write_bytes
from ..metrics import Scores, scores
from .statistics import DEFAULT_INTERVAL, DEFAULT_RESAMPLES, Interval, subject_intervals


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
            if not isinstance(data, dict):  # e.g. `[]`: valid JSON, but not a record
                return None
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
    #: what the run changed of its profile's config, as given: ``--config PATH``, ``--set KEY=VALUE``
    overrides: list[str] = field(default_factory=list)

    def _pooled(self, attr: str, dataset: str | None = None) -> tuple[list[int], list[int], list[str]]:
        y_true, y_pred, groups = [], [], []
        for f in self.folds:
            for d, t, p, g in zip(f.datasets, f.y_true, getattr(f, attr), f.subjects):
                if dataset is None or d == dataset:
                    y_true.append(t)
                    y_pred.append(p)
                    groups.append(g)
        return y_true, y_pred, groups

    def scores(self, dataset: str | None = None) -> Scores:
        return scores(*self._pooled("y_pred", dataset)[:2], len(self.class_names))

    def baseline_scores(self, dataset: str | None = None) -> Scores:
        """Majority class of each fold's training labels, pooled the same way."""
        return scores(*self._pooled("baseline_pred", dataset)[:2], len(self.class_names))

    @property
    def bootstrap(self) -> dict[str, int]:
        """Resamples and seed of the intervals (``evaluation.bootstrap``; defaults for older runs)."""
        conf = self.config.get("evaluation", {}).get("bootstrap") or {}
        return {"resamples": int(conf.get("resamples", DEFAULT_RESAMPLES)), "seed": int(conf.get("seed", 0))}

    @property
    def interval_method(self) -> str:
        """Which interval the run carries (``evaluation.interval``; the default for older runs)."""
        return str(self.config.get("evaluation", {}).get("interval") or DEFAULT_INTERVAL)

    @property
    def subjects(self) -> int:
        return len({g for f in self.folds for g in f.subjects})

    def intervals(self, dataset: str | None = None) -> dict[str, Interval]:
        """95 % intervals over subjects of the pooled UF1 and UAR (all data or one corpus)."""
        y_true, y_pred, groups = self._pooled("y_pred", dataset)
        return subject_intervals(y_true, y_pred, groups, len(self.class_names), method=self.interval_method,
                                 **self.bootstrap)

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
        """What a test-subject epoch selection would report: per fold, the audited epoch of the last
        audited stage (the one that trains the final model; an earlier stage's head, such as
        MPFNet's AFE pre-training classifier, is not what the method predicts with) with the most
        correct test predictions. Shown only to expose that inflation, never as the result."""
        if not all(f.audit for f in self.folds):
            return None
        y_true, y_pred = [], []
        for f in self.folds:
            final_stage = next(reversed(f.audit)).rpartition(":")[0]
            epochs = [pred for key, pred in f.audit.items() if key.rpartition(":")[0] == final_stage]
            best = max(epochs, key=lambda pred: sum(int(t == p) for t, p in zip(f.y_true, pred)))
            y_true += f.y_true
            y_pred += best
        return scores(y_true, y_pred, len(self.class_names))

    @property
    def seed(self) -> int:
        return int(self.config.get("run", {}).get("seed", 0))

    def predictions(self) -> dict[str, tuple[int, int, str, str]]:
        """Sample key -> (label, prediction, subject, dataset): what a paired comparison aligns on."""
        return {k: (t, p, g, d) for f in self.folds
                for k, t, p, g, d in zip(f.keys, f.y_true, f.y_pred, f.subjects, f.datasets)}

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
                       "correct": int(f.y_true[i] == f.y_pred[i]),
                       "baseline": self.class_names[f.baseline_pred[i]]}
                row.update({f"p_{c}": round(p, 6) for c, p in zip(self.class_names, f.probabilities[i])})
                rows.append(row)
        return rows


def differing_samples(a: Iterable[str], b: Iterable[str], names: tuple[str, str] = ("A", "B")) -> str | None:
    """None if ``a`` and ``b`` hold the same sample keys, else a one-line account of the difference."""
    a, b = set(a), set(b)
    if a == b:
        return None
    parts = []
    for name, only in ((names[0], sorted(a - b)), (names[1], sorted(b - a))):
        if only:
            parts.append(f"{len(only)} only in {name} ({', '.join(only[:3])}{', ...' if len(only) > 3 else ''})")
    return "; ".join(parts)


def stacked_predictions(runs: Sequence[RunResult], dataset: str | None = None
                        ) -> tuple[list[int], np.ndarray, list[str]]:
    """(labels, predictions ``(runs, samples)``, subjects) over the same samples, in the first run's
    order; a ValueError if the runs cover different samples or disagree on a label."""
    tables = [r.predictions() for r in runs]
    keys = [k for k, row in tables[0].items() if dataset is None or row[3] == dataset]
    for i, table in enumerate(tables[1:], 2):
        diff = differing_samples(tables[0], table, ("run 1", f"run {i}"))
        if diff:
            raise ValueError(f"runs over different samples: {diff}")
        wrong = [k for k in keys if table[k][0] != tables[0][k][0]]
        if wrong:
            raise ValueError(f"runs disagree on the labels of {len(wrong)} sample(s), e.g. {wrong[0]} (another task?)")
    labels = [tables[0][k][0] for k in keys]
    preds = np.array([[table[k][1] for k in keys] for table in tables], dtype=np.int64).reshape(len(tables), len(keys))
    return labels, preds, [tables[0][k][2] for k in keys]


@dataclass
class SeedsResult:
    """One LOSO configuration run once per seed (``mer run --seeds``): each seed's figures, their
    mean +- std, and the interval of the seed mean. Every seed covers the same samples."""

    runs: list[RunResult]
    run_dir: Path
    mlflow_run_id: str | None = None

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    @property
    def first(self) -> RunResult:
        return self.runs[0]

    @property
    def datasets(self) -> list[str]:
        return self.first.datasets

    def spread(self, dataset: str | None = None) -> dict[str, tuple[float, float]]:
        """Metric -> (mean, sample standard deviation over seeds; nan with one seed)."""
        out = {}
        for name in ("uf1", "uar", "acc"):
            values = [getattr(r.scores(dataset), name) for r in self.runs]
            out[name] = (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"))
        return out

    def intervals(self, dataset: str | None = None) -> dict[str, Interval]:
        """Intervals over subjects of the seed-mean UF1 / UAR (each resample or left-out subject
        scores every seed)."""
        labels, preds, groups = stacked_predictions(self.runs, dataset)
        return subject_intervals(labels, preds, groups, len(self.first.class_names),
                                 method=self.first.interval_method, **self.first.bootstrap)
