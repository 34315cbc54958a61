"""Leave-one-subject-out evaluation: the one loop over folds in the whole framework.

Per fold, everything that is fitted -- weights, normalisation statistics, the validation split
used for early stopping, any pre-training or support set -- sees the training subjects only.
Finished folds are stored atomically, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..data.dataset import LoadedDataset
from ..data.tensors import FoldData, TensorSet
from ..features.store import FeatureStore, build_inputs
from ..io import atomic_torch_save
from ..interfaces import Evaluator, FeatureRequest, Method, StageContext
from ..protocols import Fold, loso_folds, validation_split
from ..training.device import amp_dtype, resolve_device, seed_everything
from ..training.supervised import predict_logits
from .normalize import Identity, Normalizer
from .results import FoldResult, RunResult


class LOSOEvaluator(Evaluator):
    """Runs a method over every LOSO fold of a dataset (SDE) or composite (CDE)."""

    def __init__(self, store: FeatureStore, run_dir: Path, *, progress: bool = True) -> None:
        self.store = store
        self.run_dir = Path(run_dir)
        self.progress = progress

    def evaluate(self, method: Method, data: LoadedDataset, config: Mapping[str, Any], *,
                 variant: str | None = None,
                 on_fold: Callable[[FoldResult, bool], None] | None = None) -> RunResult:
        requests = method.features(config)
        samples = data.samples
        inputs = build_inputs(self.store, requests, samples, workers=int(config["run"].get("feature_workers", 0)),
                              progress=self.progress)
        labels = torch.tensor([s.label(data.task) for s in samples], dtype=torch.long)
        full = TensorSet(inputs, labels, list(samples))
        folds = loso_folds([s.group for s in samples])
        results, reused = [], 0
        bar = tqdm(folds, desc=f"LOSO {method.name}", unit="fold", disable=not self.progress)
        for fold in bar:
            path = self.run_dir / "folds" / f"{fold.index:03d}.json"
            result = FoldResult.load(path)
            was_reused = result is not None and result.keys == [samples[i].key for i in fold.test]
            if not was_reused:
                result = self._run_fold(method, full, fold, requests, config, data)
                result.save(path)
            else:
                reused += 1
            results.append(result)
            if on_fold is not None:
                on_fold(result, was_reused)
            correct = sum(int(t == p) for r in results for t, p in zip(r.y_true, r.y_pred))
            total = sum(len(r.y_true) for r in results)
            bar.set_postfix(acc=f"{correct / max(total, 1):.3f}")
        return RunResult(method.name, variant, data.name, data.task, data.labels.classes, dict(config), results,
                         self.run_dir, reused_folds=reused)

    def _run_fold(self, method: Method, full: TensorSet, fold: Fold, requests: Mapping[str, FeatureRequest],
                  config: Mapping[str, Any], data: LoadedDataset) -> FoldResult:
        start = time.perf_counter()
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
            test_groups=(fold.name,),
        )
        device = resolve_device(run_cfg.get("device", "auto"))
        history: list[tuple[str, float, int]] = []
        fold_dir = self.run_dir / "folds" / f"{fold.index:03d}"
        fold_dir.mkdir(parents=True, exist_ok=True)

        def extract(request: FeatureRequest, samples: Sequence) -> torch.Tensor:
            return self.store.stack(request, samples)

        ctx = StageContext(device=device, seed=seed, num_classes=data.labels.num_classes,
                           class_names=data.labels.classes, fold=fold.name, work_dir=fold_dir,
                           amp_dtype=amp_dtype(device, run_cfg.get("precision", "auto")),
                           log_metric=lambda k, v, step: history.append((k, float(v), int(step))),
                           progress=self.progress, extract=extract, normalize=norm)
        seed_everything(seed)
        model = method.build_model(config, data.labels.num_classes)
        for stage in method.stages(config):
            ctx.stage = getattr(stage, "stage_name", stage.name)
            model = stage.fit(model, fold_data, ctx)
        logits = predict_logits(model, fold_data.test, device, int(config["evaluation"]["batch_size"]), ctx.amp_dtype)
        probs = torch.softmax(logits, dim=1)
        checkpoint = None
        if run_cfg.get("checkpoints"):
            checkpoint = str(fold_dir / "model.pt")
            atomic_torch_save(checkpoint, {k: v.detach().cpu() for k, v in model.state_dict().items()})
        majority = int(torch.bincount(train.labels, minlength=data.labels.num_classes).argmax())
        tests = fold_data.test.samples
        return FoldResult(
            index=fold.index, fold=fold.name, keys=[s.key for s in tests], datasets=[s.dataset for s in tests],
            subjects=[s.group for s in tests], y_true=fold_data.test.labels.tolist(),
            y_pred=probs.argmax(1).tolist(), probabilities=probs.tolist(), baseline_pred=[majority] * len(tests),
            history=history, seconds=time.perf_counter() - start, checkpoint=checkpoint,
            n_train=len(train), n_val=len(val) if val is not None else 0)
