"""Subject-level intervals (jackknife t, percentile bootstrap) and paired comparisons on hand-made predictions."""
from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from mercore.evaluation.results import FoldResult, RunResult, SeedsResult
from mercore.evaluation.statistics import (bootstrap_intervals, jackknife_intervals, paired_differences,
                                           subject_intervals, uf1_uar)
from mercore.metrics import confusion_matrix, scores

# Five subjects of four clips (labels 0,1,2,0), predicted with 4, 3, 2, 1 and 0 clips right.
PATTERN_TRUE = [0, 1, 2, 0]
PATTERN_RIGHT = [4, 3, 2, 1, 0]


def pattern(copies: int) -> tuple[list[int], list[int], list[str]]:
    """``copies`` x the five-subject pattern: the pooled metrics are the same for every ``copies``."""
    y_true, y_pred, groups = [], [], []
    for c in range(copies):
        for s, right in enumerate(PATTERN_RIGHT):
            for i, t in enumerate(PATTERN_TRUE):
                y_true.append(t)
                y_pred.append(t if i < right else (t + 1) % 3)
                groups.append(f"d/s{c}-{s}")
    return y_true, y_pred, groups


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_vectorised_metrics_equal_the_pooled_scores_and_scikit_learn():
    rng = np.random.default_rng(3)
    for _ in range(20):
        y_true = rng.integers(0, 4, 60)
        y_true[y_true == 3] = 2  # class 3 absent: left out of the means, as in mercore.metrics
        y_pred = rng.integers(0, 4, 60)
        uf1, uar = uf1_uar(confusion_matrix(y_true, y_pred, 4))
        s = scores(y_true, y_pred, 4)
        assert float(uf1) == pytest.approx(s.uf1) and float(uar) == pytest.approx(s.uar)
        assert s.uar == pytest.approx(balanced_accuracy_score(y_true, y_pred))
        assert s.uf1 == pytest.approx(f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro"))


def test_interval_covers_the_point_estimate_and_is_reproducible():
    y_true, y_pred, groups = pattern(4)
    iv = bootstrap_intervals(y_true, y_pred, groups, 3, resamples=2000, seed=7)
    assert iv["uf1"].estimate == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert iv["uar"].estimate == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    for name in ("uf1", "uar"):
        assert iv[name].low < iv[name].estimate < iv[name].high
    assert bootstrap_intervals(y_true, y_pred, groups, 3, resamples=2000, seed=7) == iv
    assert bootstrap_intervals(y_true, y_pred, groups, 3, resamples=2000, seed=8) != iv


def test_interval_widens_when_subjects_are_fewer():
    many = bootstrap_intervals(*pattern(4), 3, seed=0)
    few = bootstrap_intervals(*pattern(1), 3, seed=0)
    assert many["uf1"].estimate == pytest.approx(few["uf1"].estimate)  # same pooled figure
    for name in ("uf1", "uar"):  # 4x the subjects: about half the width
        assert few[name].high - few[name].low > 1.5 * (many[name].high - many[name].low)


def test_resampling_is_by_subject_not_by_sample():
    # one subject all right, one all wrong: a resample holds 2, 1 or 0 right subjects, so the
    # 95 % interval spans from "both wrong" (UF1 0) to "both right" (UF1 1)
    y_true = [0, 1, 2] * 2
    y_pred = [0, 1, 2, 1, 2, 0]
    iv = bootstrap_intervals(y_true, y_pred, ["a"] * 3 + ["b"] * 3, 3, resamples=4000, seed=0)
    assert (iv["uf1"].low, iv["uf1"].high) == (0.0, 1.0)
    assert (iv["uar"].low, iv["uar"].high) == (0.0, 1.0)


def test_2000_resamples_of_500_samples_are_fast():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 5, 500))
    groups = [f"s{g}" for g in rng.integers(0, 68, 500)]
    start = time.perf_counter()
    bootstrap_intervals(y_true, y_pred, groups, 5, resamples=2000)
    assert time.perf_counter() - start < 1.0


def test_paired_difference_sign_interval_and_permutation_p():
    y_true, a, groups = pattern(4)
    b = list(y_true)  # B gets every sample right: better on every imperfect subject
    better = paired_differences(y_true, a, b, groups, 3, permutations=4000, seed=1)
    assert better["uf1"].delta == pytest.approx(1.0 - f1_score(y_true, a, average="macro"))
    assert better["uf1"].interval.low > 0 and better["uar"].interval.low > 0
    assert better["uf1"].p_value < 0.01
    worse = paired_differences(y_true, b, a, groups, 3, permutations=4000, seed=1)
    assert worse["uf1"].delta == pytest.approx(-better["uf1"].delta)
    assert worse["uf1"].interval.high < 0
    same = paired_differences(y_true, a, a, groups, 3, permutations=500, seed=1)
    assert same["uf1"].delta == 0 and same["uf1"].p_value == 1.0
    assert (same["uf1"].interval.low, same["uf1"].interval.high) == (0.0, 0.0)


def test_permutation_p_value_is_not_small_for_a_difference_on_one_subject():
    y_true, a, groups = pattern(4)
    b = list(a)
    first = [i for i, g in enumerate(groups) if g == "d/s0-4"]  # the all-wrong subject of copy 0
    for i in first:
        b[i] = y_true[i]
    d = paired_differences(y_true, a, b, groups, 3, permutations=4000, seed=0)
    assert d["uf1"].delta > 0
    assert d["uf1"].p_value > 0.3  # one subject of twenty: a coin flip would produce it half the time
    with pytest.raises(ValueError, match="same shape"):
        paired_differences(y_true, [a, a], [b], groups, 3)


def _run(seed: int, preds: list[int], y_true: list[int], groups: list[str]) -> RunResult:
    folds = []
    for i, g in enumerate(sorted(set(groups))):
        idx = [j for j, x in enumerate(groups) if x == g]
        folds.append(FoldResult(i, g, [f"k{j}" for j in idx], ["d"] * len(idx), [g] * len(idx),
                                [y_true[j] for j in idx], [preds[j] for j in idx], [[1, 0, 0]] * len(idx),
                                [0] * len(idx)))
    return RunResult("m", None, "d", "megc3", ("a", "b", "c"), {"run": {"seed": seed}}, folds, None)


def test_seeds_mean_std_and_interval_of_the_seed_mean():
    y_true, a, groups = pattern(2)
    runs = [_run(0, a, y_true, groups), _run(1, list(y_true), y_true, groups)]
    seeds = SeedsResult(runs, None)
    mean, std = seeds.spread()["uf1"]
    values = [r.scores().uf1 for r in runs]
    assert seeds.seeds == [0, 1]
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values, ddof=1))
    iv = seeds.intervals()["uf1"]
    assert iv.estimate == pytest.approx(mean) and iv.low < mean < iv.high
    assert iv.high <= 1.0


def test_jackknife_t_interval_checked_by_hand():
    """Estimate +- t(0.975, S-1) x sqrt((S-1)/S x sum (theta_i - mean theta)^2), theta_i the pooled
    UF1 without subject i (scikit-learn's macro F1 over the classes present)."""
    from scipy.stats import t as student_t

    y_true, y_pred, groups = pattern(1)
    subjects = sorted(set(groups))
    theta = []
    for left in subjects:
        keep = [i for i, g in enumerate(groups) if g != left]
        yt, yp = [y_true[i] for i in keep], [y_pred[i] for i in keep]
        theta.append(f1_score(yt, yp, labels=sorted(set(yt)), average="macro"))
    n = len(subjects)
    se = np.sqrt((n - 1) / n * ((np.array(theta) - np.mean(theta)) ** 2).sum())
    estimate = f1_score(y_true, y_pred, average="macro")
    crit = student_t.ppf(0.975, n - 1)
    iv = jackknife_intervals(y_true, y_pred, groups, 3)["uf1"]
    assert iv.estimate == pytest.approx(estimate)
    assert (iv.low, iv.high) == pytest.approx((max(0.0, estimate - crit * se), min(1.0, estimate + crit * se)))


def test_jackknife_interval_narrows_with_more_subjects_and_takes_seed_means():
    many = jackknife_intervals(*pattern(4), 3)
    few = jackknife_intervals(*pattern(1), 3)
    for name in ("uf1", "uar"):
        assert few[name].high - few[name].low > 1.5 * (many[name].high - many[name].low)
    y_true, y_pred, groups = pattern(2)
    two_seeds = jackknife_intervals(y_true, [y_pred, y_pred], groups, 3)
    assert two_seeds == jackknife_intervals(y_true, y_pred, groups, 3)  # two equal seeds: the same figure


def test_interval_method_is_chosen_by_name():
    args = pattern(2)
    assert subject_intervals(*args, 3) == jackknife_intervals(*args, 3)
    assert subject_intervals(*args, 3, method="percentile", resamples=300, seed=1) == \
        bootstrap_intervals(*args, 3, resamples=300, seed=1)
    with pytest.raises(ValueError, match="unknown interval"):
        subject_intervals(*args, 3, method="bca")


def test_few_subjects_are_warned_about(tmp_path):
    from mercore.reporting.artifacts import metrics_table

    def run_of(copies: int) -> RunResult:
        y_true, y_pred, groups = pattern(copies)
        folds = [FoldResult(i, g, [f"{g}/{j}" for j in range(4)], ["d"] * 4, [g] * 4,
                            y_true[4 * i:4 * i + 4], y_pred[4 * i:4 * i + 4], [[1 / 3] * 3] * 4, [0] * 4)
                 for i, g in enumerate(dict.fromkeys(groups))]
        return RunResult("m", None, "d", "megc3", ("a", "b", "c"), {}, folds, tmp_path)

    assert "WARNING: only 5 subjects" in metrics_table(run_of(1))
    assert "WARNING" not in metrics_table(run_of(2))
    assert "jackknife t interval" in metrics_table(run_of(2))


def test_results_no_better_than_the_baseline_or_of_one_class_are_warned_about(tmp_path):
    from mercore.reporting.artifacts import metrics_table, result_warnings as warnings

    y_true, _, groups = pattern(2)
    subjects = list(dict.fromkeys(groups))

    def run_of(predict) -> RunResult:
        folds = [FoldResult(i, g, [f"{g}/{j}" for j in range(4)], ["d"] * 4, [g] * 4, y_true[4 * i:4 * i + 4],
                            [predict(t) for t in y_true[4 * i:4 * i + 4]], [[1 / 3] * 3] * 4, [0] * 4)
                 for i, g in enumerate(subjects)]
        return RunResult("m", None, "d", "megc3", ("a", "b", "c"), {}, folds, tmp_path)

    good = run_of(lambda t: t)
    assert warnings(good) == []
    constant = run_of(lambda t: 0)
    found = " ".join(warnings(constant))
    assert "not above the majority-class baseline" in found and "predicted 'a'" in found
    assert "WARNING: every clip is predicted 'a'" in metrics_table(constant)
