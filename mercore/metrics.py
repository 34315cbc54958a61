"""MER metrics on pooled predictions, as MEGC2019 computes them.

UF1 and UAR are computed once from the predictions of all folds pooled together (TP/FP/FN
summed over folds), not averaged per fold or per subject: per-fold averaging is one of the
field's known inflations. Classes with no ground-truth sample in the evaluated set are left out
of the means (a class cannot be recalled if it never occurs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int],
                     num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts; rows are ground truth, columns predictions."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


@dataclass(frozen=True)
class Scores:
    uf1: float
    uar: float
    acc: float
    weighted_f1: float
    per_class_recall: tuple[float, ...]
    per_class_f1: tuple[float, ...]
    confusion: np.ndarray
    n: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}uf1": self.uf1, f"{prefix}uar": self.uar, f"{prefix}acc": self.acc,
                f"{prefix}weighted_f1": self.weighted_f1}


def scores(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], num_classes: int) -> Scores:
    """UF1 (macro F1), UAR (mean per-class recall), accuracy and support-weighted F1."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    present = support > 0
    denom = support + predicted  # 2TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    n = int(cm.sum())
    return Scores(
        uf1=float(f1[present].mean()) if present.any() else 0.0,
        uar=float(recall[present].mean()) if present.any() else 0.0,
        acc=float(tp.sum() / n) if n else 0.0,
        weighted_f1=float((f1 * support).sum() / support.sum()) if n else 0.0,
        per_class_recall=tuple(float(r) for r in recall),
        per_class_f1=tuple(float(v) for v in f1),
        confusion=cm,
        n=n,
    )
