"""The fold records of a run folder: what makes a run resumable.

Each finished fold is one JSON record, ``folds/NNN.json``, written atomically; its work files
(checkpoint, artifacts) lie in ``folds/NNN/``. A record is reused only while it holds: it reads,
it tested the same samples, and the identity it was computed under (:mod:`.identity`) is the
run's. The store says why one does not, so a run can report what it recomputes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..protocols import Fold
from ..sample import Sample
from .identity import changes
from .results import FoldResult


@dataclass
class FoldPlan:
    """Of a run's ``total`` folds, those earlier records hold (``reused``, by fold index) and why
    the others are computed (reason -> count)."""

    total: int
    reused: dict[int, FoldResult] = field(default_factory=dict)
    recomputed: Counter[str] = field(default_factory=Counter)


class FoldStore:
    """The fold records in ``run_dir/folds``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def path(self, index: int) -> Path:
        """Where fold ``index``'s record lies."""
        return self.run_dir / "folds" / f"{index:03d}.json"

    def work_dir(self, index: int) -> Path:
        """The folder of fold ``index``'s own files (checkpoint, artifacts)."""
        return self.run_dir / "folds" / f"{index:03d}"

    def load(self, fold: Fold, samples: Sequence[Sample], identity: dict[str, Any]) -> tuple[FoldResult | None, str]:
        """The recorded result of ``fold`` if it holds for this run, else None and why not."""
        path = self.path(fold.index)
        stored = FoldResult.load(path)
        if stored is None:
            return None, f"record {path} unreadable" if path.exists() else "not run before"
        if stored.keys != [samples[i].key for i in fold.test]:
            return None, "other test samples"
        why = changes(stored.identity, identity)
        return (stored, "") if why is None else (None, why)

    def save(self, result: FoldResult) -> None:
        """Record ``result`` atomically: a reader sees the whole record or none."""
        result.save(self.path(result.index))

    def plan(self, folds: Sequence[Fold], samples: Sequence[Sample], identity: dict[str, Any]) -> FoldPlan:
        """The records of ``folds`` that hold under ``identity`` and why the others do not."""
        plan = FoldPlan(len(folds))
        for fold in folds:
            stored, why = self.load(fold, samples, identity)
            if stored is None:
                plan.recomputed[why] += 1
            else:
                plan.reused[fold.index] = stored
        return plan
