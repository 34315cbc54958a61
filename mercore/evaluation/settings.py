"""The ``evaluation`` section as typed settings, checked before any work.

Its values are read only after every fold has trained (the intervals) or inside each fold (the
batch size), so a bad one -- ``bootstrap.resamples=0`` once crashed after the last fold -- must be
refused when the run starts, in one line naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from ..settings import Between, PositiveInt, Settings, inert

#: more resamples than this change an interval by less than its rounding, and 10^5 x subjects
#: counts already take most of a second; far more would hang the end of a run
MAX_RESAMPLES = 100_000


@dataclass(frozen=True, kw_only=True)
class Bootstrap(Settings):
    """``evaluation.bootstrap``: the percentile intervals' (and ``mer compare``'s) resampling."""

    section = "evaluation.bootstrap"

    resamples: Annotated[int, Between(1, MAX_RESAMPLES)]
    seed: Annotated[int, Between(0, 2**32 - 1)]  # NumPy's generators take no negative seed


@dataclass(frozen=True, kw_only=True)
class EvaluationSettings(Settings):
    """``evaluation``: how test folds are predicted and how the pooled figures' intervals are drawn."""

    section = "evaluation"

    batch_size: PositiveInt
    # how the intervals are drawn, not what was predicted: neither is part of the run's identity
    interval: Literal["jackknife_t", "percentile"] = inert()  # the keys of statistics.INTERVALS
    bootstrap: Bootstrap = inert()
    leakage_audit: bool

