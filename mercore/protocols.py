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
