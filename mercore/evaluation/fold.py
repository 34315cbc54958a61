"""One LOSO fold, fitted and tested: the unit every executor runs and every run folder records.

:func:`fit_model` trains on a fold's training subjects (``mer fit`` uses it with no test
subject); :func:`fit_fold` adds the test predictions and builds the :class:`FoldResult`, writing
nothing but the fold's own work folder, so whoever runs it decides where the record goes.
:class:`FoldJob` is that fold run as a run does it, recorded through the run's
:class:`FoldStore`: a picklable object, so fold processes and Ray tasks receive it whole.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ..core_settings import CoreSettings
from ..data.dataset import Dataset, LoadedDataset
from ..data.tensors import FoldData, TensorSet
from ..features.store import FeatureStore
from ..io import atomic_torch_save
from ..interfaces import FeatureRequest, StageContext
from ..method import Method
from ..nn.base import check_modules, watch_outputs
from ..protocols import Fold, validation_split
from ..sample import Sample
from ..training.compiled import compile_model
from ..training.device import amp_dtype, resolve_device, seed_everything
from ..training.supervised import predict_logits
from .fold_store import FoldStore
from .normalize import Identity, Normalizer, mirror_value
from .results import FoldResult


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


def _report_share(on_progress: Callable[[float], None], stage: int, stages: int, done: int, epochs: int) -> None:
    """The share of a fold done after ``done`` of ``epochs`` epochs of stage ``stage``: each stage counts equally."""
    on_progress((stage + done / max(epochs, 1)) / stages)


def fit_model(method: Method, full: TensorSet, fold: Fold, requests: Mapping[str, FeatureRequest],
              config: Mapping[str, Any], data: LoadedDataset, store: FeatureStore, work_dir: Path, *,
              progress: bool = False, on_progress: Callable[[float], None] | None = None,
              datasets: Mapping[str, Dataset] | None = None) -> FittedModel:
    """Train ``method`` on ``fold.train`` as a LOSO fold does: validation subjects drawn from the
    training subjects, normalisation fitted on the fitting part, every stage in order, seeded by
    ``run.seed + fold.index``. ``fold.test`` may be empty (``mer fit``'s model of all subjects).
    ``on_progress`` hears the share of the fold done after each epoch (each stage counts equally);
    ``datasets`` (the registry's adapters by name) reach the stages through their context."""
    core = CoreSettings.of(config)
    seed = core.run.seed + fold.index
    groups = full.groups
    fit_idx, val_idx = validation_split(groups, fold.train, core.validation.subjects, seed)
    train, val, test = full.subset(fit_idx), full.subset(val_idx) if val_idx else None, full.subset(fold.test)
    assert not set(test.groups) & set(train.groups), "test subject leaked into training"
    norm = Normalizer.fit(train.inputs) if core.data.normalize else Identity()
    fold_data = FoldData(
        train=TensorSet(norm.apply(train.inputs), train.labels, train.samples),
        val=TensorSet(norm.apply(val.inputs), val.labels, val.samples) if val is not None else None,
        test=TensorSet(norm.apply(test.inputs), test.labels, test.samples),
        test_groups=tuple(sorted(set(test.groups))),
    )
    device = resolve_device(core.run.device)
    history: list[tuple[str, float, int]] = []
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    def extract(request: FeatureRequest, samples: Sequence[Sample]) -> torch.Tensor:
        return store.stack(request, samples)

    audit: dict[str, list[int]] = {}
    artifacts: list[str] = []

    def log_artifact(path: Path) -> None:
        path = Path(path).resolve()
        if not path.is_file() or not path.is_relative_to(work_dir.resolve()):
            raise ValueError(f"log_artifact: {path} is not a file under the fold's work_dir {work_dir}")
        artifacts.append(str(path))

    def record_test_predictions(model: torch.nn.Module, epoch: int) -> None:
        logits = predict_logits(model, fold_data.test, device, core.evaluation.batch_size)
        audit[f"{ctx.stage}:{epoch}"] = logits.argmax(1).tolist()
        model.train()

    centres = {stream: c for stream, request in requests.items() if (c := store.mirror_centre(request)) is not None}
    auditing = core.evaluation.leakage_audit and len(fold_data.test)
    ctx = StageContext(device=device, seed=seed, num_classes=data.labels.num_classes,
                       class_names=data.labels.classes, fold=fold.name, work_dir=work_dir,
                       amp_dtype=amp_dtype(device, core.run.precision),
                       log_metric=lambda k, v, step: history.append((k, float(v), int(step))),
                       log_artifact=log_artifact,
                       progress=progress, extract=extract, normalize=norm,
                       flow_centres={s: mirror_value(norm, s, c) for s, c in centres.items()},
                       audit=record_test_predictions if auditing else None, datasets=dict(datasets or {}))
    seed_everything(seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = method.build_model(config, data.labels.num_classes)
    check_modules(model, f"method {method.name!r}")
    watch_outputs(model, f"method {method.name!r}")
    if core.run.channels_last and device.type == "cuda":
        # Module.to takes memory_format (as Tensor.to does); torch's overloads omit it
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if core.run.compile:
        model = compile_model(model)
    stages = list(method.stages(config))
    for index, stage in enumerate(stages):
        ctx.stage = getattr(stage, "stage_name", stage.name)
        if on_progress is not None:
            ctx.on_epoch = partial(_report_share, on_progress, index, len(stages))
        model = stage.fit(model, fold_data, ctx)
    majority = int(torch.bincount(train.labels, minlength=data.labels.num_classes).argmax())
    return FittedModel(model, norm, fold_data, ctx, majority, history, audit, artifacts)


def fit_fold(method: Method, full: TensorSet, fold: Fold, requests: Mapping[str, FeatureRequest],
             config: Mapping[str, Any], data: LoadedDataset, store: FeatureStore, work_dir: Path,
             identity: dict[str, Any] | None = None, *, progress: bool = False,
             on_progress: Callable[[float], None] | None = None,
             datasets: Mapping[str, Dataset] | None = None) -> FoldResult:
    """Fit ``fold`` (:func:`fit_model`) and predict its test subjects. Writes only in ``work_dir``
    (the model there with ``run.checkpoints``); the result carries ``identity``, what it was
    computed under, for the record a rerun reuses."""
    start, cpu_start = time.perf_counter(), time.process_time()
    core = CoreSettings.of(config)
    fitted = fit_model(method, full, fold, requests, config, data, store, work_dir, progress=progress,
                       on_progress=on_progress, datasets=datasets)
    test = fitted.data.test
    logits = predict_logits(fitted.model, test, fitted.ctx.device, core.evaluation.batch_size,
                            fitted.ctx.amp_dtype)
    probs = torch.softmax(logits, dim=1)
    checkpoint = str(fitted.save(work_dir)) if core.run.checkpoints else None
    device = fitted.ctx.device
    tests = test.samples
    return FoldResult(
        index=fold.index, fold=fold.name, keys=[s.key for s in tests], datasets=[s.dataset for s in tests],
        subjects=[s.group for s in tests], y_true=test.labels.tolist(),
        y_pred=probs.argmax(1).tolist(), probabilities=probs.tolist(), baseline_pred=[fitted.majority] * len(tests),
        history=fitted.history, seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start,
        checkpoint=checkpoint, n_train=len(fitted.data.train),
        n_val=len(fitted.data.val) if fitted.data.val is not None else 0, audit=fitted.audit,
        artifacts=fitted.artifacts,
        peak_gpu_memory_mb=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        identity=identity if identity is not None else {})


@dataclass
class FoldJob:
    """One run's fold job: :func:`fit_fold` in the fold's work folder of ``records``, under the
    run's ``identity``. Calling it also records the result (atomically, before returning it), so
    a fold that finished is kept whatever happens to the process that asked for it."""

    method: Method
    full: TensorSet
    requests: Mapping[str, FeatureRequest]
    config: Mapping[str, Any]
    data: LoadedDataset
    features: FeatureStore
    records: FoldStore
    identity: dict[str, Any]
    progress: bool = False  # the trainers' own progress bars
    datasets: Mapping[str, Dataset] = field(default_factory=dict)  # the registry's adapters, for the stages

    def fit(self, fold: Fold, on_progress: Callable[[float], None] | None = None) -> FoldResult:
        """The fold's result, not recorded (for an executor whose workers cannot write the run folder)."""
        return fit_fold(self.method, self.full, fold, self.requests, self.config, self.data, self.features,
                        self.records.work_dir(fold.index), self.identity, progress=self.progress,
                        on_progress=on_progress, datasets=self.datasets)

    def __call__(self, fold: Fold, on_progress: Callable[[float], None] | None = None) -> FoldResult:
        result = self.fit(fold, on_progress)
        self.records.save(result)
        return result
