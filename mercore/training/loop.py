"""The one training loop every trainer runs.

The loop owns what trainers must not each re-implement (and once did, four times, drifting
apart): the optimiser and its schedule, gradient scaling under fp16, clipping, the progress
bar, per-epoch metric logging, the leakage-audit hook and weight averaging. A trainer supplies
only its batches and the loss of one batch (a :class:`Step`), and may stop early after an epoch.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
import math
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, TypeVar

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from ..config import OPTIMIZERS, SCHEDULERS
from ..interfaces import StageContext
from ..settings import Probability, Settings

Batch = TypeVar("Batch")

__all__ = ["NonFiniteLoss", "Optimisation", "Step", "WeightAveraging", "autocast", "build_optimizer", "build_scheduler", "descend", "train_epochs",
           "trainable"]


class NonFiniteLoss(RuntimeError):
    """Training diverged (NaN or infinite loss): its predictions would be meaningless."""


@dataclass(frozen=True)
class Step:
    """What one batch gave: the loss to minimise, the number of samples it averages over (the
    weight of its loss in the epoch's mean), and further per-epoch metrics as (sum, count)."""

    loss: torch.Tensor
    size: int = 1
    metrics: Mapping[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(kw_only=True)
class WeightAveraging(Settings):
    """Evaluate an average of the weights over the last part of training instead of the last
    epoch's weights (``torch.optim.swa_utils.AveragedModel``): the model of one last epoch is one
    noisy draw, and averaging is the field's honest remedy (nothing is selected on any data).

    ``kind``: ``none`` (the last epoch's weights), ``ema`` (exponential moving average with
    ``decay``, updated after every optimiser step) or ``swa`` (equal mean of the weights at the end
    of each epoch). Averaging starts at epoch ``floor(start * epochs)``. Buffers (BatchNorm
    statistics) are averaged with the weights, so no extra pass over the data is needed. A stage
    that restores an early-stopping epoch keeps that epoch's weights instead.
    """

    section = "train.weight_averaging"
    defaults_key = "weight_averaging"

    kind: Literal["none", "ema", "swa"]
    start: Probability
    decay: Probability


@dataclass(frozen=True)
class Optimisation:
    """Optimiser, learning-rate schedule, gradient clipping and weight averaging of one stage."""

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: Mapping[str, Any] | None = None
    grad_clip: float | None = None
    averaging: WeightAveraging | None = None


def build_optimizer(params: Any, name: str, lr: float, weight_decay: float = 0.0, momentum: float = 0.9) -> torch.optim.Optimizer:
    name = name.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def build_scheduler(optimizer: torch.optim.Optimizer, spec: Mapping[str, Any] | None,
                    epochs: int) -> torch.optim.lr_scheduler.LRScheduler | None:
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


def autocast(ctx: StageContext) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for a forward pass when the run asks for it (``ctx.amp_dtype``)."""
    return torch.autocast(ctx.device.type, dtype=ctx.amp_dtype, enabled=ctx.amp_dtype is not None)


def descend(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None,
            params: Iterable[nn.Parameter] | None = None, grad_clip: float | None = None) -> None:
    """One gradient step: backward (scaled when ``scaler`` is enabled, i.e. under fp16), optional
    norm clipping of ``params`` on the unscaled gradients, update."""
    scaler = scaler or torch.amp.GradScaler(enabled=False)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip:
        assert params is not None, "clipping needs the params"
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()


def train_epochs(model: nn.Module, params: Iterable[nn.Parameter], ctx: StageContext, *, stage: str, epochs: int,
                 optimisation: Optimisation, batches: Callable[[int], Iterable[Batch]],
                 step: Callable[[Batch], Step], after_epoch: Callable[[int, dict[str, float]], bool] | None = None,
                 audit: bool = False) -> None:
    """Train ``model`` for up to ``epochs`` epochs.

    Each epoch puts the model in training mode, runs ``step`` on every batch of ``batches(epoch)``
    and takes a gradient step on its loss, steps the schedule, logs the epoch means as
    ``{stage}/{name}`` (``loss`` and the step's metrics), calls the leakage audit when ``audit``,
    and then ``after_epoch(epoch, means)``, which ends training by returning True. With
    ``optimisation.averaging`` the model ends with the averaged weights (:class:`WeightAveraging`).
    """
    params = list(params)
    averaging = optimisation.averaging if optimisation.averaging and optimisation.averaging.kind != "none" else None
    first_averaged = math.floor(averaging.start * epochs) if averaging else epochs
    averaged: AveragedModel | None = None
    opt = build_optimizer(params, optimisation.optimizer, optimisation.lr, optimisation.weight_decay,
                          optimisation.momentum)
    sched = build_scheduler(opt, optimisation.scheduler, epochs)
    scaler = torch.amp.GradScaler(enabled=ctx.amp_dtype == torch.float16)
    bar = tqdm(range(epochs), desc=f"{ctx.fold} {stage}", leave=False, disable=not ctx.progress)
    for epoch in bar:
        model.train()
        if averaging and epoch == first_averaged:
            averaged = AveragedModel(model, use_buffers=True, multi_avg_fn=(
                get_ema_multi_avg_fn(averaging.decay) if averaging.kind == "ema" else None))
        sums: dict[str, list[float]] = {"loss": [0.0, 0.0]}
        for batch in batches(epoch):
            out = step(batch)
            if not torch.isfinite(out.loss.detach()).all():
                raise NonFiniteLoss(f"{ctx.fold} {stage}: the training loss became {out.loss.item()} in epoch {epoch} "
                                    f"(learning rate {optimisation.lr}): check the learning rate and the inputs")
            descend(out.loss, opt, scaler, params, optimisation.grad_clip)
            if averaged is not None and averaging is not None and averaging.kind == "ema":
                averaged.update_parameters(model)
            sums["loss"][0] += out.loss.item() * out.size
            sums["loss"][1] += out.size
            for name, (total, count) in out.metrics.items():
                acc = sums.setdefault(name, [0.0, 0.0])
                acc[0] += total
                acc[1] += count
        if sched is not None:
            sched.step()
        if averaged is not None and averaging is not None and averaging.kind == "swa":
            averaged.update_parameters(model)
        means = {name: total / max(count, 1) for name, (total, count) in sums.items()}
        for name, value in means.items():
            ctx.log_metric(f"{stage}/{name}", value, epoch)
        if audit and ctx.audit is not None:
            ctx.audit(model, epoch)
        bar.set_postfix(loss=f"{means['loss']:.3f}")
        ctx.on_epoch(epoch + 1, epochs)
        if after_epoch is not None and after_epoch(epoch, means):
            break
    if averaged is not None and int(averaged.n_averaged) > 0:
        model.load_state_dict(averaged.module.state_dict())
        ctx.log_metric(f"{stage}/averaged_updates", float(averaged.n_averaged), 0)


def trainable(model: nn.Module, select: Callable[[nn.Module], Any] | None = None) -> Iterator[nn.Parameter]:
    """The parameters a stage trains: ``select(model)`` when given, else all that require grad."""
    return iter(select(model) if select else [p for p in model.parameters() if p.requires_grad])
