"""How sure a LOSO figure is: subject-level bootstrap intervals and paired comparisons.

A LOSO result is one draw of test subjects; a different set of subjects would give a different
pooled UF1. The unit that varies is the subject, not the sample (a subject's clips are not
independent), so every resampling here draws whole subjects with replacement and pools their
predictions before computing the metric, exactly as the point estimate is pooled.

Everything is vectorised over per-subject confusion matrices: a resample is a vector of subject
counts, and its pooled confusion matrix is that vector times the stacked per-subject matrices.
2000 resamples of a few hundred samples take milliseconds.

Which interval a result carries (``evaluation.interval``) was measured, not assumed:
``benchmarks/interval_coverage.md`` simulates SMIC-like (16 subjects) and composite-like (68)
studies. The percentile bootstrap covered the true pooled UF1 92% of the time at both sizes; the
jackknife t interval 94.5% at 16 and 93.5% at 68 subjects (BCa no better than percentile), so the
jackknife t interval is the default. Below about 10 subjects no interval holds its level, and the
reports say so (:data:`FEW_SUBJECTS`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

LEVEL = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_PERMUTATIONS = 10000
#: the intervals a result may carry (``evaluation.interval``), described as the reports print them
INTERVALS = {
    "jackknife_t": "jackknife t interval over subjects (estimate +- t(S-1) x leave-one-subject-out standard "
                   "error of the pooled figure, clipped to [0, 1])",
    "percentile": "percentile bootstrap over subjects (resampled with replacement, predictions pooled)",
}
DEFAULT_INTERVAL = "jackknife_t"
METHOD = INTERVALS["percentile"]  # the paired comparisons' bootstrap (mer compare)
#: below this many subjects no interval holds its level (benchmarks/interval_coverage.md)
FEW_SUBJECTS = 10
METRIC_NAMES = ("uf1", "uar")


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile interval at ``level``."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL

    def as_list(self) -> list[float]:
        return [self.low, self.high]

    def __str__(self) -> str:
        return f"[{self.low:.3f}, {self.high:.3f}]"


def subject_confusions(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], groups: Sequence[str],
                       num_classes: int) -> tuple[list[str], np.ndarray]:
    """(subjects, counts): ``counts[..., g, t, p]`` = samples of subject g with label t predicted p.

    ``y_pred`` may carry leading axes (e.g. one row of predictions per seed); they are kept.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    subjects, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    lead = y_pred.shape[:-1]
    flat = y_pred.reshape(-1, y_pred.shape[-1])
    counts = np.zeros((flat.shape[0], len(subjects), num_classes, num_classes), dtype=np.int64)
    for row in range(flat.shape[0]):
        np.add.at(counts[row], (index, y_true, flat[row]), 1)
    return subjects.tolist(), counts.reshape(*lead, len(subjects), num_classes, num_classes)


def uf1_uar(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UF1 and UAR of confusion matrices ``(..., C, C)`` as :func:`mercore.metrics.scores` computes
    them: classes without a ground-truth sample are left out of both means."""
    confusion = np.asarray(confusion, dtype=float)
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)
    support = confusion.sum(axis=-1)
    predicted = confusion.sum(axis=-2)
    present = support > 0
    n_present = present.sum(axis=-1)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    with np.errstate(invalid="ignore", divide="ignore"):
        uf1 = np.where(n_present > 0, (f1 * present).sum(axis=-1) / n_present, 0.0)
        uar = np.where(n_present > 0, (recall * present).sum(axis=-1) / n_present, 0.0)
    return uf1, uar


def subject_weights(n_subjects: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(resamples, n_subjects)`` counts: how often each subject is drawn in each resample."""
    return rng.multinomial(n_subjects, np.full(n_subjects, 1.0 / n_subjects), size=resamples)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail], axis=0)
    return float(low), float(high)


def bootstrap_intervals(y_true: Sequence[int], y_pred: np.ndarray | Sequence[int], groups: Sequence[str],
                        num_classes: int, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                        level: float = LEVEL) -> dict[str, Interval]:
    """95 % intervals of the pooled UF1 and UAR by resampling subjects (``groups``) with replacement.

    ``y_pred`` may be ``(seeds, samples)``: then the statistic is the mean over seeds of the pooled
    metric, every seed seeing the same resampled subjects.
    """
    if resamples < 1:
        raise ValueError(f"bootstrap resamples must be >= 1, got {resamples}")
    _, counts = subject_confusions(y_true, np.atleast_2d(y_pred), groups, num_classes)
    uf1, uar = uf1_uar(counts.sum(axis=1))
    estimates = {"uf1": float(uf1.mean()), "uar": float(uar.mean())}
    weights = subject_weights(counts.shape[1], resamples, np.random.default_rng(seed))
    pooled = np.einsum("rg,sgtp->rstp", weights, counts)  # (resamples, seeds, C, C)
    boot_uf1, boot_uar = (m.mean(axis=1) for m in uf1_uar(pooled))
    return {name: Interval(estimates[name], *_percentiles(values, level), level)
            for name, values in (("uf1", boot_uf1), ("uar", boot_uar))}


def jackknife_intervals(y_true: Sequence[int], y_pred: np.ndarray | Sequence[int], groups: Sequence[str],
                        num_classes: int, *, level: float = LEVEL) -> dict[str, Interval]:
    """95 % jackknife t intervals of the pooled UF1 and UAR over subjects (``groups``): the
    estimate +- t(level, S - 1) x the leave-one-subject-out jackknife standard error, clipped to
    [0, 1]. ``y_pred`` may be ``(seeds, samples)``: the statistic is then the seed mean."""
    from scipy.stats import t as student_t

    _, counts = subject_confusions(y_true, np.atleast_2d(y_pred), groups, num_classes)  # (seeds, S, C, C)
    total = counts.sum(axis=1)
    estimates = {name: float(v.mean()) for name, v in zip(METRIC_NAMES, uf1_uar(total))}
    n = counts.shape[1]
    if n < 2:
        return {name: Interval(e, 0.0, 1.0, level) for name, e in estimates.items()}
    left_out = uf1_uar(total[:, None] - counts)  # 2 x (seeds, S): each subject left out once
    crit = float(student_t.ppf(1 - (1 - level) / 2, n - 1))
    out = {}
    for name, values in zip(METRIC_NAMES, left_out):
        theta = values.mean(axis=0)  # (S,) seed means
        se = float(np.sqrt((n - 1) / n * ((theta - theta.mean()) ** 2).sum()))
        e = estimates[name]
        out[name] = Interval(e, max(0.0, e - crit * se), min(1.0, e + crit * se), level)
    return out


def subject_intervals(y_true: Sequence[int], y_pred: np.ndarray | Sequence[int], groups: Sequence[str], num_classes: int, *,
                      method: str = DEFAULT_INTERVAL, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      level: float = LEVEL) -> dict[str, Interval]:
    """The intervals ``method`` (a key of :data:`INTERVALS`) gives; the bootstrap's ``resamples``
    and ``seed`` matter only to ``percentile``."""
    if method == "jackknife_t":
        return jackknife_intervals(y_true, y_pred, groups, num_classes, level=level)
    if method == "percentile":
        return bootstrap_intervals(y_true, y_pred, groups, num_classes, resamples=resamples, seed=seed, level=level)
    raise ValueError(f"unknown interval {method!r}; choose one of: {', '.join(INTERVALS)}")


@dataclass(frozen=True)
class Difference:
    """B - A of one metric: estimate, paired-bootstrap interval and sign-flip permutation p-value."""

    metric: str
    a: float
    b: float
    interval: Interval
    p_value: float

    @property
    def delta(self) -> float:
        return self.interval.estimate


def paired_differences(y_true: Sequence[int], pred_a: np.ndarray | Sequence[int], pred_b: np.ndarray | Sequence[int],
                       groups: Sequence[str], num_classes: int, *, resamples: int = DEFAULT_RESAMPLES,
                       permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0,
                       level: float = LEVEL) -> dict[str, Difference]:
    """UF1 and UAR of B minus A over the same samples, with

    * a paired bootstrap interval: subjects resampled with replacement, both systems scored on the
      same resample, the difference taken per resample (percentile interval);
    * a two-sided permutation p-value: under "A and B are exchangeable", each subject's A and B
      predictions are swapped with probability 1/2 (sign flip); p = (1 + #|d*| >= |d|) / (1 + R).

    ``pred_a`` / ``pred_b`` may be ``(seeds, samples)`` with the same number of seeds: the
    statistic is then the mean over seeds, and a swap exchanges a subject's predictions of all seeds.
    """
    pred_a, pred_b = np.atleast_2d(pred_a), np.atleast_2d(pred_b)
    if pred_a.shape != pred_b.shape:
        raise ValueError(f"A has {pred_a.shape[0]} seed(s) of {pred_a.shape[1]} predictions, "
                         f"B {pred_b.shape[0]} of {pred_b.shape[1]}: a paired comparison needs the same shape")
    _, ca = subject_confusions(y_true, pred_a, groups, num_classes)  # (seeds, G, C, C)
    _, cb = subject_confusions(y_true, pred_b, groups, num_classes)
    rng = np.random.default_rng(seed)
    (a_uf1, a_uar), (b_uf1, b_uar) = uf1_uar(ca.sum(axis=1)), uf1_uar(cb.sum(axis=1))
    observed = {"uf1": (a_uf1.mean(), b_uf1.mean()), "uar": (a_uar.mean(), b_uar.mean())}

    weights = subject_weights(ca.shape[1], resamples, rng)
    boot_a = uf1_uar(np.einsum("rg,sgtp->rstp", weights, ca))
    boot_b = uf1_uar(np.einsum("rg,sgtp->rstp", weights, cb))

    flips = rng.integers(0, 2, size=(permutations, ca.shape[1]))  # 1: swap this subject's A and B
    keep = 1 - flips
    perm_a = uf1_uar(np.einsum("rg,sgtp->rstp", keep, ca) + np.einsum("rg,sgtp->rstp", flips, cb))
    perm_b = uf1_uar(np.einsum("rg,sgtp->rstp", keep, cb) + np.einsum("rg,sgtp->rstp", flips, ca))

    out = {}
    for i, name in enumerate(METRIC_NAMES):
        a, b = observed[name]
        delta = float(b - a)
        boot = boot_b[i].mean(axis=1) - boot_a[i].mean(axis=1)
        null = perm_b[i].mean(axis=1) - perm_a[i].mean(axis=1)
        extreme = int(np.sum(np.abs(null) >= abs(delta) - 1e-12))
        out[name] = Difference(name, float(a), float(b), Interval(delta, *_percentiles(boot, level), level),
                               (1 + extreme) / (1 + permutations))
    return out
