"""Evaluation protocols: leave-one-subject-out folds and training-subject validation splits."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Fold:
    """One LOSO fold: the held-out subject and the sample indices on each side."""

    index: int
    name: str
    train: tuple[int, ...]
    test: tuple[int, ...]


def loso_folds(groups: Sequence[str]) -> list[Fold]:
    """One fold per subject (``dataset/subject`` groups, so composites stay namespaced).

    SDE and CDE are the same rule: CDE just runs it over a composite's samples.
    """
    order = sorted(set(groups))
    if len(order) < 2:
        raise ValueError(f"LOSO needs at least two subjects, got {len(order)}")
    folds = []
    for i, g in enumerate(order):
        test = tuple(j for j, x in enumerate(groups) if x == g)
        train = tuple(j for j, x in enumerate(groups) if x != g)
        folds.append(Fold(i, g, train, test))
    return folds


def validation_split(groups: Sequence[str], train: Sequence[int], fraction: float, seed: int
                     ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Hold out whole *training* subjects for validation; the test subject is not in ``train``.

    Returns (fit indices, validation indices). ``fraction`` 0 gives no validation split; at least
    one subject is held out otherwise, and at least one is kept for fitting.
    """
    if fraction <= 0:
        return tuple(train), ()
    subjects = sorted({groups[i] for i in train})
    if len(subjects) < 2:
        return tuple(train), ()
    k = min(len(subjects) - 1, max(1, round(fraction * len(subjects))))
    rng = np.random.default_rng(seed)
    held = set(rng.choice(subjects, size=k, replace=False).tolist())
    fit = tuple(i for i in train if groups[i] not in held)
    val = tuple(i for i in train if groups[i] in held)
    return fit, val


def subject_folds(groups: Sequence[str], k: int, seed: int) -> list[Fold]:
    """``k`` folds of whole subjects (a seeded, group-wise k-fold): every subject is held out once,
    never split between fitting and scoring. ``mer tune`` scores a trial with these on the
    training subjects of one outer LOSO fold."""
    order = sorted(set(groups))
    if k < 2 or k > len(order):
        raise ValueError(f"subject-wise cross-validation needs 2 <= folds <= subjects ({len(order)}), got {k}")
    shuffled = np.random.default_rng(seed).permutation(order).tolist()
    folds = []
    for i, part in enumerate(np.array_split(np.array(shuffled, dtype=object), k)):
        held = set(part.tolist())
        test = tuple(j for j, g in enumerate(groups) if g in held)
        train = tuple(j for j, g in enumerate(groups) if g not in held)
        folds.append(Fold(i, f"inner {i + 1}/{k}: {', '.join(sorted(held))}", train, test))
    return folds
