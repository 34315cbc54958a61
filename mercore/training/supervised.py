"""Supervised cross-entropy training with optional validation-based early stopping.

Validation data come only from training subjects (the core splits them off per fold), so the
epoch kept by early stopping never depends on the test subject.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Mapping

import torch
from torch import nn

from ..data.tensors import FoldData, TensorSet
from ..interfaces import StageContext, Trainer
from ..metrics import scores
from ..settings import NonNegativeFloat, PositiveFloat, PositiveInt, Probability, Settings, runtime
from .loop import Optimisation, Step, WeightAveraging, autocast, train_epochs, trainable
from .perturbation import PerturbationTraining

Augment = Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]]


@dataclass(kw_only=True)
class EarlyStopping(Settings):
    """Stop when ``monitor`` on the validation split has not improved for ``patience`` epochs
    (``patience`` null: never stop early)."""

    section = "train.early_stopping"

    patience: PositiveInt | None
    monitor: Literal["val_loss", "val_uf1"]
    restore_best: bool


@dataclass(kw_only=True)
class FitCheck(Settings):
    """Does the model fit its training data? (docs/protocols.md, rule 11, applied inside the fold.)

    Training runs at ``lr`` first; when its last epoch's mean training loss is not below
    ``loss_ratio`` times its first epoch's, the stage starts again from the same initial weights
    at each ``fallback_lr`` in turn, and keeps the first run that passes, else the one with the
    lowest last-epoch loss. Only the fold's training clips are looked at, so the choice is a part
    of fitting the fold. ``fallback_lr: []`` turns it off (one run, as without the check).
    """

    section = "train.fit_check"

    fallback_lr: tuple[PositiveFloat, ...]
    loss_ratio: Probability


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (classes absent from the fold get weight 0)."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights / weights[counts > 0].mean()


@torch.no_grad()
def predict_logits(model: nn.Module, data: TensorSet, device: torch.device, batch_size: int = 64,
                   amp: torch.dtype | None = None) -> torch.Tensor:
    """Logits for every sample of ``data`` in order, on CPU as float32."""
    model.eval()
    out = []
    for inputs, _ in data.batches(batch_size):
        inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out.append(model(inputs).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


@dataclass(kw_only=True)
class SupervisedTrainer(Trainer, Settings):
    """Cross-entropy training; every hyperparameter is a config value (defaults in
    ``mercore/configs/trainers.yaml``, ``supervised``).

    Args:
        optimizer, lr, weight_decay, momentum: the optimiser.
        epochs, batch_size: the schedule length and batch size.
        scheduler: ``{"name": "step", "step_size": 10, "gamma": 0.1}`` or ``cosine`` or ``none``.
        class_weighting: ``balanced`` weights the loss by inverse class frequency of the fold.
        early_stopping: patience and monitored quantity on the validation split.
        label_smoothing, grad_clip: regularisation.
        fit_check: retrain at fallback learning rates when the loss does not fall (:class:`FitCheck`).
        perturbation: perturbation-training (PT) schedule, see ``mercore.training.perturbation``;
            ``{"enabled": true, "every": 20, ...}``. Any method gets it through its ``train`` config.
        augment: batch augmentation, applied to training batches only (set by the method).
        stage_name: prefix of the logged metrics (``train/loss`` ...).
        parameters: which parameters to train; default all that require grad.
    """

    section = "train"
    defaults_key = "supervised"

    optimizer: str
    lr: PositiveFloat
    weight_decay: NonNegativeFloat
    momentum: NonNegativeFloat
    epochs: PositiveInt
    batch_size: PositiveInt
    scheduler: Mapping[str, Any] | None
    class_weighting: Literal["none", "balanced"]
    early_stopping: EarlyStopping
    label_smoothing: Probability
    grad_clip: PositiveFloat | None
    weight_averaging: WeightAveraging
    fit_check: FitCheck
    perturbation: PerturbationTraining
    augment: Augment | None = runtime()
    stage_name: str = runtime("train")
    parameters: Callable[[nn.Module], Any] | None = runtime()

    name = "supervised"

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        model.to(ctx.device)
        rates = (self.lr, *self.fit_check.fallback_lr)
        if len(rates) == 1:
            self._fit_at(self.lr, model, data, ctx)
            return model
        initial = copy.deepcopy(model.state_dict())
        tried: list[tuple[float, float, dict[str, torch.Tensor]]] = []  # (last loss, lr, weights)
        for lr in rates:
            model.load_state_dict(initial)
            first, last = self._fit_at(lr, model, data, ctx)
            ctx.log_metric(f"{self.stage_name}/fit_check_ratio", last / first if first > 0 else 0.0, len(tried))
            if last < self.fit_check.loss_ratio * first:
                ctx.log_metric(f"{self.stage_name}/fit_check_lr", lr, 0)
                return model
            tried.append((last, lr, copy.deepcopy(model.state_dict())))
        last, lr, weights = min(tried, key=lambda t: t[0])
        model.load_state_dict(weights)
        ctx.log_metric(f"{self.stage_name}/fit_check_lr", lr, 0)
        return model

    def _fit_at(self, lr: float, model: nn.Module, data: FoldData, ctx: StageContext) -> tuple[float, float]:
        """One training run at ``lr``; returns the mean training loss of its first and last epoch."""
        device = ctx.device
        weight = class_weights(data.train.labels, ctx.num_classes).to(device) if self.class_weighting == "balanced" else None
        loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=self.label_smoothing)
        gen = ctx.generator(offset=17)
        train = data.train.to(device)
        pt = self.perturbation if self.perturbation.enabled else None

        def batches(epoch: int) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
            perturbing = pt is not None and pt.active(epoch)
            if pt is not None:
                ctx.log_metric(f"{self.stage_name}/perturbation_phase", float(perturbing), epoch)
            for inputs, labels in train.batches(self.batch_size, shuffle=True, generator=gen):
                if self.augment is not None:
                    inputs = self.augment(inputs, gen)
                if perturbing and pt is not None:  # perturbing only with pt
                    inputs = pt(inputs, gen, ctx.flow_centres)
                yield inputs, labels

        def step(batch: tuple[dict[str, torch.Tensor], torch.Tensor]) -> Step:
            inputs, labels = batch
            with autocast(ctx):
                logits = model(inputs).float()
            return Step(loss_fn(logits, labels), len(labels))

        stopping = _Validation(model, data.val, ctx, self.stage_name, self.early_stopping)
        losses: list[float] = []

        def after_epoch(epoch: int, means: dict[str, float]) -> bool:
            losses.append(means["loss"])
            return stopping(epoch, means) if stopping.active else False

        train_epochs(model, trainable(model, self.parameters), ctx, stage=self.stage_name, epochs=self.epochs,
                     optimisation=Optimisation(self.optimizer, lr, self.weight_decay, self.momentum,
                                               self.scheduler, self.grad_clip,
                                               self.weight_averaging),
                     batches=batches, step=step, after_epoch=after_epoch, audit=True)
        stopping.restore()
        return losses[0], losses[-1]


class _Validation:
    """Early stopping on the validation split (training subjects only): logs its loss and UF1
    (``mercore.metrics``) each epoch, stops after ``patience`` epochs without improvement and
    restores the best epoch's weights."""

    def __init__(self, model: nn.Module, val: TensorSet | None, ctx: StageContext, stage: str,
                 rule: EarlyStopping) -> None:
        self.model, self.val, self.ctx, self.stage, self.rule = model, val, ctx, stage, rule
        self.active = val is not None and len(val) > 0 and rule.patience is not None
        self.best_score, self.best_epoch, self.stale = -math.inf, -1, 0
        self.best_state: dict[str, Any] | None = None

    def __call__(self, epoch: int, means: dict[str, float]) -> bool:
        assert self.val is not None and self.rule.patience is not None  # called only when active
        logits = predict_logits(self.model, self.val, self.ctx.device, amp=self.ctx.amp_dtype)
        labels = self.val.labels.cpu()
        val_loss = nn.functional.cross_entropy(logits, labels).item()
        val_uf1 = scores(labels.tolist(), logits.argmax(1).tolist(), self.ctx.num_classes).uf1
        self.ctx.log_metric(f"{self.stage}/val_loss", val_loss, epoch)
        self.ctx.log_metric(f"{self.stage}/val_uf1", val_uf1, epoch)
        score = -val_loss if self.rule.monitor == "val_loss" else val_uf1
        if score > self.best_score:
            self.best_score, self.best_epoch, self.stale = score, epoch, 0
            self.best_state = copy.deepcopy(self.model.state_dict()) if self.rule.restore_best else None
            return False
        self.stale += 1
        return self.stale >= self.rule.patience

    def restore(self) -> None:
        if self.active and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
            self.ctx.log_metric(f"{self.stage}/best_epoch", float(self.best_epoch), 0)
