"""Executors: where a run's folds are computed -- here, in fold processes, or as Ray tasks.

An executor takes the folds left and a :class:`~.fold.FoldJob`, and tells the evaluator of each
finished fold (``finish``) and, where it can, of a running fold's progress (``advance``). It
decides nothing about the result: each fold is seeded by its index, so which process runs it,
and when, does not change it (the torch thread count can; see ``docs/architecture.md``).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from functools import partial
from typing import Callable, Sequence

import torch

from ..protocols import Fold
from .fold import FoldJob
from .processes import report_progress, run_in_processes
from .results import FoldResult

Finish = Callable[[FoldResult], None]
Advance = Callable[[Fold, float], None]


class Executor(ABC):
    """Runs folds through a fold job."""

    @abstractmethod
    def run(self, folds: Sequence[Fold], job: FoldJob, finish: Finish, advance: Advance) -> None:
        """``finish(result)`` for each of ``folds`` once its result is recorded, in the order they
        finish; ``advance(fold, share)`` with the share of a running fold done, if known."""


class SequentialExecutor(Executor):
    """The folds one after another in this process."""

    def run(self, folds: Sequence[Fold], job: FoldJob, finish: Finish, advance: Advance) -> None:
        for fold in folds:
            finish(job(fold, on_progress=partial(advance, fold)))


class ProcessExecutor(Executor):
    """The folds in ``workers`` fold processes of ``threads`` torch threads each
    (:func:`~.processes.run_in_processes`, started by ``start_method``).

    A worker records its fold itself (atomically, before reporting it), so a fold that finished
    is kept whatever happens to this process. On any exit (a Ctrl-C or SIGTERM arrives as
    KeyboardInterrupt) the workers are stopped: SIGTERM, then SIGKILL after
    ``processes.STOP_GRACE_S``. They also die with this process.
    """

    def __init__(self, workers: int, threads: int, start_method: str = "auto") -> None:
        self.workers = workers
        self.threads = threads
        self.start_method = start_method

    def run(self, folds: Sequence[Fold], job: FoldJob, finish: Finish, advance: Advance) -> None:
        # no trainer bars from workers: they would garble the parent's; progress comes back as shares
        work = partial(replace(job, progress=False), on_progress=report_progress)
        run_in_processes(folds, work, finish, workers=self.workers, threads=self.threads,
                         describe=lambda fold: f"running fold {fold.index} ({fold.name})", on_progress=advance,
                         method=self.start_method)


class RayExecutor(Executor):
    """The folds as Ray tasks (``--executor ray [--address ADDR]``), each asking for ``cpus`` CPUs
    and ``gpus`` GPUs (``run.ray_cpus`` / ``run.ray_gpus``). Results return to this process,
    which records them (a remote task's disk is not this one's) before ``finish``."""

    def __init__(self, address: str | None = None, cpus: float = 1.0, gpus: float = 0.0) -> None:
        self.address = address
        self.cpus = cpus
        self.gpus = gpus

    def run(self, folds: Sequence[Fold], job: FoldJob, finish: Finish, advance: Advance) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError("--executor ray needs Ray: pip install 'mercore[ray]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus)(_fit_on_ray)
        shared = ray.put(replace(job, progress=False))
        try:
            pending = [remote.remote(shared, fold, max(1, int(self.cpus))) for fold in folds]
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                result = ray.get(finished[0])
                job.records.save(result)
                finish(result)
        finally:
            if started_here:
                ray.shutdown()


def _fit_on_ray(job: FoldJob, fold: Fold, threads: int) -> FoldResult:
    torch.set_num_threads(threads)
    return job.fit(fold)
