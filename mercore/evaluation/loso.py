"""Leave-one-subject-out evaluation: the one loop over folds in the whole framework.

Per fold, everything that is fitted -- weights, normalisation statistics, the validation split
used for early stopping, any pre-training or support set -- sees the training subjects only
(:mod:`.fold`). The evaluator orchestrates: the run folder's :class:`~.fold_store.FoldStore`
says which folds earlier runs recorded, the inputs are built once, an
:class:`~.executors.Executor` computes the folds left (each recorded as it finishes, so an
interrupted run resumes where it stopped), and the results become one :class:`RunResult`.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..core_settings import CoreSettings, RunSettings
from ..data.dataset import Dataset, LoadedDataset
from ..data.tensors import TensorSet
from ..features.store import FeatureStore, build_inputs
from ..interfaces import Evaluator
from ..method import Method
from ..protocols import Fold, loso_folds
from ..spec import EXECUTORS, check_workers
from ..training.device import resolve_device
from .executors import Executor, ProcessExecutor, RayExecutor, SequentialExecutor
from .fold import FittedModel, FoldJob, fit_model
from .fold_store import FoldStore
from .identity import run_identity
from .results import FoldResult, RunResult

#: names code written before the split imports from here
__all__ = ["FittedModel", "LOSOEvaluator", "MAX_AUTO_WORKERS", "auto_workers", "check_workers", "fit_model",
           "usable_cores"]

MAX_AUTO_WORKERS = 4  # each fold process holds its own model, optimiser and activations


def usable_cores() -> int:
    """CPU cores this process may run on (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_workers(device: str, folds: int) -> int:
    """Fold processes for ``workers="auto"``: one per core (at most 4) on CPU, none on a GPU.

    Small MER models use a second torch thread poorly and a second process well (the LOSO rows
    of benchmarks/results.md). Folds are seeded by index, so only the thread count (its rounding)
    can make them differ from a sequential run.
    """
    if resolve_device(device).type != "cpu":
        return 0
    workers = min(usable_cores(), folds, MAX_AUTO_WORKERS)
    return workers if workers > 1 else 0


class LOSOEvaluator(Evaluator):
    """Runs a method over every LOSO fold of a dataset (SDE) or composite (CDE)."""

    def __init__(self, store: FeatureStore, run_dir: Path, *, progress: bool = True, workers: int | str = 0,
                 executor: str | Executor = "local", address: str | None = None,
                 datasets: Mapping[str, Dataset] | None = None) -> None:
        """``executor``: ``local`` (this process, or ``workers`` fold processes), ``ray`` (Ray tasks,
        on the cluster at ``address``) or an :class:`Executor` of one's own. ``datasets``: the
        registered adapters by name (``Registry.dataset_adapters``), handed to every stage."""
        if not isinstance(executor, Executor) and executor not in EXECUTORS:
            raise ValueError(f"unknown executor {executor!r}; choose {' or '.join(EXECUTORS)}")
        check_workers(workers)
        self.store = store
        self.run_dir = Path(run_dir)
        self.fold_store = FoldStore(self.run_dir)
        self.progress = progress
        self.workers = workers
        self.executor = executor
        self.address = address
        self.datasets = dict(datasets or {})
        #: folds recorded (``earlier`` of them by an earlier run) / in the run: what a stopped run says
        self.finished = self.earlier = self.total = 0

    def plan(self, data: LoadedDataset, config: Mapping[str, Any], software: Mapping[str, str] | None = None,
             folds: Sequence[Fold] | None = None) -> tuple[list[Fold], dict[str, Any], dict[int, FoldResult],
                                                           Counter[str]]:
        """The folds (as :meth:`evaluate` takes them), the identity they are computed under, the
        records of them an earlier identical run left (reused, never recomputed) and why the others
        are computed; counts them in :attr:`finished`, :attr:`earlier` and :attr:`total`. Cheap: a
        run calls it first, so a stop at any later point can say what is recorded."""
        samples = data.samples
        folds = list(folds) if folds is not None else loso_folds([s.group for s in samples])
        identity = run_identity(config, software or {}, samples, data.task, self.store.fingerprint)
        plan = self.fold_store.plan(folds, samples, identity)
        self.finished = self.earlier = len(plan.reused)
        self.total = plan.total
        return folds, identity, plan.reused, plan.recomputed

    # the interface leaves an evaluator's options to it (``**options``); these are LOSO's
    def evaluate(self, method: Method, data: LoadedDataset, config: Mapping[str, Any], *,  # type: ignore[override]
                 variant: str | None = None, software: Mapping[str, str] | None = None,
                 on_fold: Callable[[FoldResult, bool], None] | None = None,
                 folds: Sequence[Fold] | None = None) -> RunResult:
        """Every LOSO fold of ``data``, or the given ``folds`` (indices into ``data.samples``:
        ``mer tune``'s inner subject-wise folds, its outer folds one at a time), reusing those an
        earlier run finished under the same identity (:mod:`.identity`; ``software``: the
        versions the result depends on, by name)."""
        run_cfg = CoreSettings.of(config).run
        folds, identity, done, recomputed = self.plan(data, config, software, folds)
        reused = len(done)
        requests = method.features(config)
        samples = data.samples
        inputs = build_inputs(self.store, requests, samples, workers=run_cfg.feature_workers,
                              progress=self.progress)
        labels = torch.tensor([s.label(data.task) for s in samples], dtype=torch.long)
        full = TensorSet(inputs, labels, list(samples))
        for index in sorted(done):
            if on_fold is not None:
                on_fold(done[index], True)
        todo = [f for f in folds if f.index not in done]
        # from all folds, not those left: a resumed run computes its last folds as the first run
        # would have (same processes and torch threads, so the same last digits)
        workers = self.workers if isinstance(self.workers, int) \
            else auto_workers(run_cfg.device, len(folds))
        # the bar counts shares of folds (a running fold's epochs), so it moves during the first
        # fold too; smoothing 0 makes the ETA the whole run's mean pace rather than the last fold's
        bar = tqdm(total=len(folds), initial=reused, desc=f"LOSO {method.name}", unit="fold", smoothing=0,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total} folds [{elapsed}<{remaining}{postfix}]",
                   disable=not self.progress)
        running: dict[int, float] = {}

        def advance(fold: Fold, share: float) -> None:
            running[fold.index] = max(running.get(fold.index, 0.0), min(share, 1.0))  # a refit does not go back
            bar.n = len(done) + sum(running.values())
            bar.refresh()

        def finish(result: FoldResult) -> None:
            done[result.index] = result
            running.pop(result.index, None)
            if on_fold is not None:
                on_fold(result, False)
            correct = sum(int(t == p) for r in done.values() for t, p in zip(r.y_true, r.y_pred))
            bar.set_postfix(acc=f"{correct / max(sum(len(r.y_true) for r in done.values()), 1):.3f}", refresh=False)
            bar.n = len(done) + sum(running.values())
            bar.refresh()

        job = FoldJob(method, full, requests, dict(config), data, self.store, self.fold_store, identity,
                      progress=self.progress, datasets=self.datasets)
        try:
            self._executor(run_cfg, workers, todo).run(todo, job, finish, advance)
        finally:
            bar.close()  # below: a worker may have recorded a fold this process was not told of
            self.finished = len(done) + sum(self.fold_store.load(f, samples, identity)[0] is not None
                                            for f in todo if f.index not in done)
        results = [done[f.index] for f in folds]
        return RunResult(method.name, variant, data.name, data.task, data.labels.classes, dict(config), results,
                         self.run_dir, reused_folds=reused, recomputed=dict(recomputed))

    def _executor(self, run_cfg: RunSettings, workers: int, todo: Sequence[Fold]) -> Executor:
        """The executor chosen at construction; ``local`` is fold processes when ``workers`` > 1
        (forked on Linux, so the preloaded tensors are shared, not copied), else this process."""
        if isinstance(self.executor, Executor):
            return self.executor
        if self.executor == "ray":
            return RayExecutor(self.address, cpus=run_cfg.ray_cpus, gpus=run_cfg.ray_gpus)
        if workers > 1 and todo:
            return ProcessExecutor(workers, threads=max(1, usable_cores() // workers),
                                   start_method=run_cfg.start_method)
        return SequentialExecutor()
