"""Leave-one-subject-out evaluation: the one loop over folds in the whole framework.

Per fold, everything that is fitted -- weights, normalisation statistics, the validation split
used for early stopping, any pre-training or support set -- sees the training subjects only.
Finished folds are recorded atomically as they finish (by the process that ran them), so an
interrupted run resumes where it stopped.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..data.dataset import LoadedDataset
from ..data.tensors import FoldData, TensorSet
from ..features.store import FeatureStore, build_inputs
from ..io import atomic_torch_save
from ..interfaces import Evaluator, FeatureRequest, Method, StageContext
from ..nn.base import check_modules, watch_outputs
from ..protocols import Fold, loso_folds, validation_split
from ..sample import Sample
from ..training.device import amp_dtype, resolve_device, seed_everything
from ..training.supervised import predict_logits
from .identity import changes, run_identity
from .normalize import Identity, Normalizer, mirror_value
from .processes import report_progress, run_in_processes
from .results import FoldResult, RunResult


MAX_AUTO_WORKERS = 4  # each fold process holds its own model, optimiser and activations


def usable_cores() -> int:
    """CPU cores this process may run on (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_workers(workers: int | str) -> int | str:
    """``workers`` if it is a fold-process count >= 0 or ``"auto"``; a ValueError otherwise."""
    if workers != "auto" and (not isinstance(workers, int) or workers < 0):
        raise ValueError(f"workers must be a count >= 0 or 'auto', got {workers!r}")
    return workers


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
                 executor: str = "local", address: str | None = None) -> None:
        if executor not in ("local", "ray"):
            raise ValueError(f"unknown executor {executor!r}; choose local or ray")
        check_workers(workers)
        self.store = store
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.workers = workers
        self.executor = executor
        self.address = address
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
        done: dict[int, FoldResult] = {}
        recomputed: Counter[str] = Counter()
        for fold in folds:
            stored, why = self._stored(fold, samples, identity)
            if stored is None:
                recomputed[why] += 1
            else:
                done[fold.index] = stored
        self.finished = self.earlier = len(done)
        self.total = len(folds)
        return folds, identity, done, recomputed

    def evaluate(self, method: Method, data: LoadedDataset, config: Mapping[str, Any], *,
                 variant: str | None = None, software: Mapping[str, str] | None = None,
                 on_fold: Callable[[FoldResult, bool], None] | None = None,
                 folds: Sequence[Fold] | None = None) -> RunResult:
        """Every LOSO fold of ``data``, or the given ``folds`` (indices into ``data.samples``:
        ``mer tune``'s inner subject-wise folds, its outer folds one at a time), reusing those an
        earlier run finished under the same identity (:mod:`.identity`; ``software``: the
        versions the result depends on, by name)."""
        folds, identity, done, recomputed = self.plan(data, config, software, folds)
        reused = len(done)
        requests = method.features(config)
        samples = data.samples
        inputs = build_inputs(self.store, requests, samples, workers=int(config["run"].get("feature_workers", 0)),
                              progress=self.progress)
        labels = torch.tensor([s.label(data.task) for s in samples], dtype=torch.long)
        full = TensorSet(inputs, labels, list(samples))
        for index in sorted(done):
            if on_fold is not None:
                on_fold(done[index], True)
        todo = [f for f in folds if f.index not in done]
        # from all folds, not those left: a resumed run computes its last folds as the first run
        # would have (same processes and torch threads, so the same last digits)
        workers = auto_workers(str(config["run"].get("device", "auto")), len(folds)) if self.workers == "auto" \
            else self.workers
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

        try:
            if self.executor == "ray":
                self._run_ray(method, full, todo, requests, config, data, identity, finish)
            elif workers > 1 and todo:
                self._run_parallel(method, full, todo, requests, config, data, identity, finish, workers, advance)
            else:
                for fold in todo:
                    finish(self._run_fold(method, full, fold, requests, config, data, identity,
                                          on_progress=lambda share, fold=fold: advance(fold, share)))
        finally:
            bar.close()  # below: a worker may have recorded a fold this process was not told of
            self.finished = len(done) + sum(self._stored(f, samples, identity)[0] is not None
                                            for f in todo if f.index not in done)
        results = [done[f.index] for f in folds]
        return RunResult(method.name, variant, data.name, data.task, data.labels.classes, dict(config), results,
                         self.run_dir, reused_folds=reused, recomputed=dict(recomputed))

    def _fold_path(self, index: int) -> Path:
        return self.run_dir / "folds" / f"{index:03d}.json"

    def _stored(self, fold: Fold, samples: Sequence[Sample], identity: dict[str, Any]) -> tuple[FoldResult | None, str]:
        """The recorded result of ``fold`` if it holds for this run, else None and why not."""
        path = self._fold_path(fold.index)
        stored = FoldResult.load(path)
        if stored is None:
            return None, f"record {path} unreadable" if path.exists() else "not run before"
        if stored.keys != [samples[i].key for i in fold.test]:
            return None, "other test samples"
        why = changes(stored.identity, identity)
        return (stored, "") if why is None else (None, why)

    def _run_parallel(self, method: Method, full: TensorSet, todo: list[Fold], requests: Mapping[str, FeatureRequest],
                      config: Mapping[str, Any], data: LoadedDataset, identity: dict[str, Any],
                      finish: Callable[[FoldResult], None], workers: int,
                      advance: Callable[[Fold, float], None]) -> None:
        """Folds in worker processes (forked, so the preloaded tensors are shared, not copied).

        Each fold is seeded by its index, so results equal a sequential run's with the same thread
        count. A worker records its fold itself (atomically, before reporting it), so a fold that
        finished is kept whatever happens to this process; this process logs it to MLflow. On any
        exit from here (a Ctrl-C or SIGTERM arrives as KeyboardInterrupt) the workers are stopped:
        SIGTERM, then SIGKILL after ``processes.STOP_GRACE_S``. They also die with this process.
        """
        work = FoldWork(LOSOEvaluator(self.store, self.run_dir, progress=False), method, full, requests, dict(config),
                        data, identity)
        run_in_processes(todo, work, finish, workers=workers, threads=max(1, usable_cores() // workers),
                         describe=lambda fold: f"running fold {fold.index} ({fold.name})", on_progress=advance,
                         method=str(config["run"].get("start_method", "auto")))

    def _run_ray(self, method: Method, full: TensorSet, todo: list[Fold], requests: Mapping[str, FeatureRequest],
                 config: Mapping[str, Any], data: LoadedDataset, identity: dict[str, Any],
                 finish: Callable[[FoldResult], None]) -> None:
        """Folds as Ray tasks (``--executor ray [--address ADDR]``), each asking for the CPUs and
        GPUs of ``run.ray_cpus`` / ``run.ray_gpus``. Results return to this process, which records
        (a remote task's disk is not this one's) and logs them, so the MLflow record looks the same
        as a local run's."""
        try:
            import ray
        except ImportError:
            raise RuntimeError("--executor ray needs Ray: pip install 'mercore[ray]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        run_cfg = config["run"]
        remote = ray.remote(num_cpus=float(run_cfg.get("ray_cpus", 1)), num_gpus=float(run_cfg.get("ray_gpus", 0)))(
            _fold_on_ray)
        state = ray.put((self.store, self.run_dir, method, full, requests, dict(config), data, identity))
        try:
            pending = [remote.remote(state, fold) for fold in todo]
            while pending:
                finished, pending = ray.wait(pending, num_returns=1)
                result = ray.get(finished[0])
                result.save(self._fold_path(result.index))
                finish(result)
        finally:
            if started_here:
                ray.shutdown()

    def _run_fold(self, method: Method, full: TensorSet, fold: Fold, requests: Mapping[str, FeatureRequest],
                  config: Mapping[str, Any], data: LoadedDataset, identity: dict[str, Any],
                  on_progress: Callable[[float], None] | None = None) -> FoldResult:
        """Fit and test one fold; its record (written last, atomically) is what a rerun reuses."""
        start, cpu_start = time.perf_counter(), time.process_time()
        fold_dir = self.run_dir / "folds" / f"{fold.index:03d}"
        fitted = fit_model(method, full, fold, requests, config, data, self.store, fold_dir, progress=self.progress,
                           on_progress=on_progress)
        test = fitted.data.test
        logits = predict_logits(fitted.model, test, fitted.ctx.device, int(config["evaluation"]["batch_size"]),
                                fitted.ctx.amp_dtype)
        probs = torch.softmax(logits, dim=1)
        checkpoint = str(fitted.save(fold_dir)) if config["run"].get("checkpoints") else None
        device = fitted.ctx.device
        tests = test.samples
        result = FoldResult(
            index=fold.index, fold=fold.name, keys=[s.key for s in tests], datasets=[s.dataset for s in tests],
            subjects=[s.group for s in tests], y_true=test.labels.tolist(),
            y_pred=probs.argmax(1).tolist(), probabilities=probs.tolist(), baseline_pred=[fitted.majority] * len(tests),
            history=fitted.history, seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start,
            checkpoint=checkpoint, n_train=len(fitted.data.train),
            n_val=len(fitted.data.val) if fitted.data.val is not None else 0, audit=fitted.audit,
            artifacts=fitted.artifacts,
            peak_gpu_memory_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            identity=identity)
        result.save(self._fold_path(fold.index))
        return result


@dataclass
class FittedModel:
    """A model trained on one fold's training subjects, with what predicting with it needs."""

    model: torch.nn.Module
    norm: Normalizer | Identity
    data: FoldData
    ctx: StageContext
    majority: int  # the most frequent training label: the majority baseline's prediction
    history: list[tuple[str, float, int]]
    audit: dict[str, list[int]]
    artifacts: list[str]

    def save(self, folder: Path) -> Path:
        """``model.pt`` (the state dict) and, when inputs were standardised, ``norm.pt`` (the
        training statistics ``mer predict`` applies) in ``folder``; returns the model's path."""
        path = Path(folder) / "model.pt"
        plain = getattr(self.model, "_orig_mod", self.model)  # unwrap torch.compile
        atomic_torch_save(path, {k: v.detach().cpu() for k, v in plain.state_dict().items()})
        if isinstance(self.norm, Normalizer):
            self.norm.save(Path(folder) / "norm.pt")
        return path


def fit_model(method: Method, full: TensorSet, fold: Fold, requests: Mapping[str, FeatureRequest],
              config: Mapping[str, Any], data: LoadedDataset, store: FeatureStore, work_dir: Path, *,
              progress: bool = False, on_progress: Callable[[float], None] | None = None) -> FittedModel:
    """Train ``method`` on ``fold.train`` as a LOSO fold does: validation subjects drawn from the
    training subjects, normalisation fitted on the fitting part, every stage in order, seeded by
    ``run.seed + fold.index``. ``fold.test`` may be empty (``mer fit``'s model of all subjects).
    ``on_progress`` hears the share of the fold done after each epoch (each stage counts equally)."""
    run_cfg = config["run"]
    seed = int(run_cfg["seed"]) + fold.index
    groups = full.groups
    fit_idx, val_idx = validation_split(groups, fold.train, float(config["validation"]["subjects"]), seed)
    train, val, test = full.subset(fit_idx), full.subset(val_idx) if val_idx else None, full.subset(fold.test)
    assert not set(test.groups) & set(train.groups), "test subject leaked into training"
    norm = Normalizer.fit(train.inputs) if config["data"].get("normalize") else Identity()
    fold_data = FoldData(
        train=TensorSet(norm.apply(train.inputs), train.labels, train.samples),
        val=TensorSet(norm.apply(val.inputs), val.labels, val.samples) if val is not None else None,
        test=TensorSet(norm.apply(test.inputs), test.labels, test.samples),
        test_groups=tuple(sorted(set(test.groups))),
    )
    device = resolve_device(run_cfg.get("device", "auto"))
    history: list[tuple[str, float, int]] = []
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    def extract(request: FeatureRequest, samples: Sequence) -> torch.Tensor:
        return store.stack(request, samples)

    audit: dict[str, list[int]] = {}
    artifacts: list[str] = []

    def log_artifact(path: Path) -> None:
        path = Path(path).resolve()
        if not path.is_file() or not path.is_relative_to(work_dir.resolve()):
            raise ValueError(f"log_artifact: {path} is not a file under the fold's work_dir {work_dir}")
        artifacts.append(str(path))

    def record_test_predictions(model: torch.nn.Module, epoch: int) -> None:
        logits = predict_logits(model, fold_data.test, device, int(config["evaluation"]["batch_size"]))
        audit[f"{ctx.stage}:{epoch}"] = logits.argmax(1).tolist()
        model.train()

    centres = {stream: c for stream, request in requests.items() if (c := store.mirror_centre(request)) is not None}
    auditing = config["evaluation"].get("leakage_audit") and len(fold_data.test)
    ctx = StageContext(device=device, seed=seed, num_classes=data.labels.num_classes,
                       class_names=data.labels.classes, fold=fold.name, work_dir=work_dir,
                       amp_dtype=amp_dtype(device, run_cfg.get("precision", "auto")),
                       log_metric=lambda k, v, step: history.append((k, float(v), int(step))),
                       log_artifact=log_artifact,
                       progress=progress, extract=extract, normalize=norm,
                       flow_centres={s: mirror_value(norm, s, c) for s, c in centres.items()},
                       audit=record_test_predictions if auditing else None)
    seed_everything(seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = method.build_model(config, data.labels.num_classes)
    check_modules(model, f"method {method.name!r}")
    watch_outputs(model, f"method {method.name!r}")
    if run_cfg.get("channels_last") and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if run_cfg.get("compile"):
        model = torch.compile(model)
    stages = list(method.stages(config))
    for index, stage in enumerate(stages):
        ctx.stage = getattr(stage, "stage_name", stage.name)
        if on_progress is not None:
            ctx.on_epoch = lambda done, epochs, index=index: on_progress((index + done / max(epochs, 1)) / len(stages))
        model = stage.fit(model, fold_data, ctx)
    majority = int(torch.bincount(train.labels, minlength=data.labels.num_classes).argmax())
    return FittedModel(model, norm, fold_data, ctx, majority, history, audit, artifacts)


@dataclass
class FoldWork:
    """One run's fold job for a worker process: picklable, so it also works where workers are
    spawned rather than forked."""

    evaluator: LOSOEvaluator
    method: Method
    full: TensorSet
    requests: Mapping[str, FeatureRequest]
    config: Mapping[str, Any]
    data: LoadedDataset
    identity: dict[str, Any]

    def __call__(self, fold: Fold) -> FoldResult:
        return self.evaluator._run_fold(self.method, self.full, fold, self.requests, self.config, self.data,
                                        self.identity, on_progress=report_progress)


def _fold_on_ray(state: tuple, fold: Fold) -> FoldResult:
    store, run_dir, method, full, requests, config, data, identity = state
    torch.set_num_threads(max(1, int(config["run"].get("ray_cpus", 1))))
    return LOSOEvaluator(store, run_dir, progress=False)._run_fold(method, full, fold, requests, config, data,
                                                                    identity)
