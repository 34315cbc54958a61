"""Supervised cross-entropy training with optional validation-based early stopping.

Validation data come only from training subjects (the core splits them off per fold), so the
epoch kept by early stopping never depends on the test subject.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn
from tqdm.auto import tqdm

from ..config import OPTIMIZERS, SCHEDULERS, check_keys
from ..data.tensors import FoldData, TensorSet
from ..interfaces import StageContext, Trainer

Augment = Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]]


@dataclass
class EarlyStopping:
    """Stop when ``monitor`` on the validation split has not improved for ``patience`` epochs."""

    patience: int | None = None
    monitor: str = "val_loss"  # val_loss | val_uf1
    restore_best: bool = True


def build_optimizer(params: Any, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9) -> torch.optim.Optimizer:
    name = name.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def build_scheduler(optimizer: torch.optim.Optimizer, spec: Mapping[str, Any] | None, epochs: int):
    spec = dict(spec or {})
    name = spec.get("name", "none")
    if name in (None, "none"):
        return None
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(spec.get("step_size", 10)),
                                               gamma=float(spec.get("gamma", 0.1)))
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (classes absent from the fold get weight 0)."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights / weights[counts > 0].mean()


def macro_f1(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """UF1 of one split, for validation monitoring (the reported metrics live in ``mercore.metrics``)."""
    f1s = []
    for c in range(num_classes):
        tp = ((pred == c) & (target == c)).sum().item()
        fp = ((pred == c) & (target != c)).sum().item()
        fn = ((pred != c) & (target == c)).sum().item()
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s) if f1s else 0.0


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


@dataclass
class SupervisedTrainer(Trainer):
    """Cross-entropy training; every hyperparameter is a config value.

    Args:
        optimizer, lr, weight_decay, momentum: the optimiser.
        epochs, batch_size: the schedule length and batch size.
        scheduler: ``{"name": "step", "step_size": 10, "gamma": 0.1}`` or ``cosine`` or ``none``.
        class_weighting: ``balanced`` weights the loss by inverse class frequency of the fold.
        early_stopping: patience and monitored quantity on the validation split.
        label_smoothing, grad_clip: regularisation.
        augment: batch augmentation, applied to training batches only.
        perturbation: perturbation-training (PT) schedule, see ``mercore.training.perturbation``;
            ``{"enabled": true, "every": 20, ...}``. Any method gets it through its ``train`` config.
        stage_name: prefix of the logged metrics (``train/loss`` ...).
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    epochs: int = 10
    batch_size: int = 32
    scheduler: Mapping[str, Any] | None = None
    class_weighting: str = "none"
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    augment: Augment | None = None
    perturbation: Mapping[str, Any] | None = None
    stage_name: str = "train"
    parameters: Callable[[nn.Module], Any] | None = None

    name = "supervised"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], **overrides: Any) -> "SupervisedTrainer":
        """Build from a config section; unknown keys are an error naming them."""
        cfg = dict(cfg)
        es = cfg.pop("early_stopping", None) or {}
        check_keys(cfg, {f for f in cls.__dataclass_fields__} - {"augment", "parameters"}, "trainer")
        return cls(**cfg, early_stopping=EarlyStopping(**es), **overrides)

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        device = ctx.device
        model.to(device)
        params = self.parameters(model) if self.parameters else [p for p in model.parameters() if p.requires_grad]
        opt = build_optimizer(params, self.optimizer, self.lr, self.weight_decay, self.momentum)
        sched = build_scheduler(opt, self.scheduler, self.epochs)
        weight = class_weights(data.train.labels, ctx.num_classes).to(device) if self.class_weighting == "balanced" else None
        if self.class_weighting not in ("none", "balanced"):
            raise ValueError(f"unknown class_weighting {self.class_weighting!r}; choose none or balanced")
        loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=self.label_smoothing)
        gen = ctx.generator(offset=17)
        scaler = torch.amp.GradScaler(enabled=ctx.amp_dtype == torch.float16)
        stopper = self.early_stopping
        use_val = data.val is not None and len(data.val) > 0 and stopper.patience is not None
        best_score, best_state, best_epoch, stale = -math.inf, None, -1, 0
        train = data.train.to(device)
        pt = None
        if self.perturbation and self.perturbation.get("enabled", False):
            from .perturbation import PerturbationTraining

            pt = PerturbationTraining.from_config(self.perturbation)
        bar = tqdm(range(self.epochs), desc=f"{ctx.fold} {self.stage_name}", leave=False, disable=not ctx.progress)
        for epoch in bar:
            model.train()
            total, count = 0.0, 0
            perturbing = pt is not None and pt.active(epoch)
            if pt is not None:
                ctx.log_metric(f"{self.stage_name}/perturbation_phase", float(perturbing), epoch)
            for inputs, labels in train.batches(self.batch_size, shuffle=True, generator=gen):
                if self.augment is not None:
                    inputs = self.augment(inputs, gen)
                if perturbing:
                    inputs = pt(inputs, gen)
                with torch.autocast(device.type, dtype=ctx.amp_dtype, enabled=ctx.amp_dtype is not None):
                    loss = loss_fn(model(inputs).float(), labels)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if self.grad_clip:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(params, self.grad_clip)
                scaler.step(opt)
                scaler.update()
                total += loss.item() * len(labels)
                count += len(labels)
            if sched is not None:
                sched.step()
            train_loss = total / max(count, 1)
            ctx.log_metric(f"{self.stage_name}/loss", train_loss, epoch)
            if ctx.audit is not None:
                ctx.audit(model, epoch)
            postfix = {"loss": f"{train_loss:.3f}"}
            if use_val:
                logits = predict_logits(model, data.val, device, amp=ctx.amp_dtype)
                val_labels = data.val.labels.cpu()
                val_loss = nn.functional.cross_entropy(logits, val_labels).item()
                val_uf1 = macro_f1(logits.argmax(1), val_labels, ctx.num_classes)
                ctx.log_metric(f"{self.stage_name}/val_loss", val_loss, epoch)
                ctx.log_metric(f"{self.stage_name}/val_uf1", val_uf1, epoch)
                score = -val_loss if stopper.monitor == "val_loss" else val_uf1
                postfix["val"] = f"{val_loss:.3f}"
                if score > best_score:
                    best_score, best_epoch, stale = score, epoch, 0
                    best_state = copy.deepcopy(model.state_dict()) if stopper.restore_best else None
                else:
                    stale += 1
                    if stale >= stopper.patience:
                        break
            bar.set_postfix(postfix)
        if use_val and best_state is not None:
            model.load_state_dict(best_state)
            ctx.log_metric(f"{self.stage_name}/best_epoch", float(best_epoch), 0)
        return model
