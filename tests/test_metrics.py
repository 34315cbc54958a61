"""Metrics agree with scikit-learn, and pooling differs from per-fold averaging."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score

from mercore.metrics import scores


@pytest.mark.parametrize("seed", range(5))
def test_scores_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 3, 200))
    s = scores(y, p, 3)
    assert s.uf1 == pytest.approx(f1_score(y, p, average="macro"))
    assert s.uar == pytest.approx(balanced_accuracy_score(y, p))
    assert s.acc == pytest.approx(accuracy_score(y, p))
    assert s.weighted_f1 == pytest.approx(f1_score(y, p, average="weighted"))
    assert (s.confusion == confusion_matrix(y, p, labels=[0, 1, 2])).all()


def test_majority_prediction_on_megc_composite_proportions():
    y = np.array([0] * 250 + [1] * 109 + [2] * 83)
    s = scores(y, np.zeros_like(y), 3)
    assert s.acc == pytest.approx(250 / 442)  # 0.5656, the official document's 0.565
    assert s.uar == pytest.approx(1 / 3)
    assert s.uf1 == pytest.approx((2 * 250 / (250 + 442)) / 3)


def test_class_absent_from_ground_truth_is_left_out_like_sklearn_labels():
    y, p = [0, 0, 1, 1], [0, 2, 1, 1]
    s = scores(y, p, 3)
    assert s.uar == pytest.approx(balanced_accuracy_score(y, p))
    assert s.uf1 == pytest.approx(f1_score(y, p, labels=[0, 1], average="macro"))


def test_pooled_uf1_differs_from_mean_of_per_fold_uf1():
    folds = [([0, 0, 1], [0, 0, 1]), ([2, 0], [0, 0]), ([1, 2, 2], [1, 2, 0])]
    y = sum((f[0] for f in folds), [])
    p = sum((f[1] for f in folds), [])
    pooled = scores(y, p, 3).uf1
    per_fold = np.mean([scores(a, b, 3).uf1 for a, b in folds])
    assert pooled == pytest.approx(f1_score(y, p, average="macro"))
    assert pooled != pytest.approx(per_fold)
