"""Triplet pre-training stage (FaceNet-style margin loss on squared distances).

Triplets (anchor, positive, negative) are drawn from the fold's *training* samples by label:
every training sample whose class has at least two samples is an anchor once per epoch, the
positive is another sample of its class and the negative a sample of another class, chosen at
random (``mining="random"``) or semi-hard (``mining="semihard"``: a negative farther from the
anchor than the positive but within the margin, from embeddings computed at the start of each
epoch; the closest farther negative if none is within the margin, a random one if none is
farther). The three members go through the same (weight-sharing) network in one batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Mapping

import torch
from torch import nn

from ..data.tensors import FoldData, TensorSet
from ..interfaces import StageContext, Trainer
from ..nn.losses import pairwise_squared_distances, triplet_margin_loss
from ..settings import NonNegativeFloat, PositiveFloat, PositiveInt, Settings, runtime
from .loop import Optimisation, Step, WeightAveraging, autocast, train_epochs, trainable

Embed = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]

__all__ = ["TripletSampler", "TripletTrainer"]


class TripletSampler:
    """Draws triplet indices into one labelled set (the training fold)."""

    def __init__(self, labels: torch.Tensor, generator: torch.Generator) -> None:
        self.labels = labels.cpu().long()
        self.gen = generator
        self.by_class = {int(c): torch.nonzero(self.labels == c).flatten() for c in self.labels.unique()}

    @property
    def usable(self) -> bool:
        """At least one class with two samples and at least two classes."""
        return len(self.by_class) >= 2 and any(len(v) >= 2 for v in self.by_class.values())

    def anchors(self) -> torch.Tensor:
        ok = torch.tensor([len(self.by_class[int(c)]) >= 2 for c in self.labels], dtype=torch.bool)
        idx = torch.nonzero(ok).flatten()
        return idx[torch.randperm(len(idx), generator=self.gen)]

    def _pick(self, pool: torch.Tensor) -> int:
        return int(pool[torch.randint(len(pool), (1,), generator=self.gen)])

    def positive(self, anchor: int) -> int:
        pool = self.by_class[int(self.labels[anchor])]
        pool = pool[pool != anchor]
        return self._pick(pool)

    def negatives(self, anchor: int) -> torch.Tensor:
        return torch.nonzero(self.labels != self.labels[anchor]).flatten()

    def sample(self, anchors: torch.Tensor, mining: str = "random", dist: torch.Tensor | None = None,
               margin: float = 0.2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Positive and negative indices for ``anchors``; ``dist`` (N, N) squared distances for semi-hard."""
        pos, neg = [], []
        for a in anchors.tolist():
            p = self.positive(a)
            negs = self.negatives(a)
            if mining == "semihard" and dist is not None:
                d_ap = dist[a, p]
                d_an = dist[a, negs]
                semi = negs[(d_an > d_ap) & (d_an < d_ap + margin)]
                farther = d_an > d_ap
                if len(semi):
                    n = self._pick(semi)
                elif bool(farther.any()):
                    n = int(negs[farther][d_an[farther].argmin()])
                else:
                    n = self._pick(negs)
            elif mining in ("random", "semihard"):
                n = self._pick(negs)
            else:
                raise ValueError(f"unknown mining {mining!r}; choose random or semihard")
            pos.append(p)
            neg.append(n)
        return anchors, torch.tensor(pos, dtype=torch.long), torch.tensor(neg, dtype=torch.long)


@dataclass(kw_only=True)
class TripletTrainer(Trainer, Settings):
    """Triplet-loss training of an embedding network on one fold's training samples.

    Args:
        optimizer, lr, momentum, weight_decay: the optimiser (MPFNet: SGD 0.01, 0.9, 5e-4).
        epochs, batch_size: epochs and triplets per batch.
        margin: alpha of the loss (on squared distances).
        mining: ``random`` or ``semihard``.
        normalize: L2-normalise embeddings before the loss (FaceNet's unit hypersphere).
        reduction: ``mean`` or ``sum`` of a batch's triplet losses (a sum scales each step by the
            batch size).
        scheduler: as :class:`~mercore.training.supervised.SupervisedTrainer`.
        embed: ``embed(model, inputs) -> (B, D)``; default ``model(inputs)``.
        parameters: which parameters to train; default all that require grad.
        stage_name: prefix of the logged metrics (``gfe/loss``).
    """

    section = "triplet"
    defaults_key = "triplet"

    optimizer: str
    lr: PositiveFloat
    momentum: NonNegativeFloat
    weight_decay: NonNegativeFloat
    epochs: PositiveInt
    batch_size: PositiveInt
    margin: NonNegativeFloat
    mining: Literal["random", "semihard"]
    normalize: bool
    reduction: Literal["mean", "sum"]
    scheduler: Mapping[str, Any] | None
    grad_clip: PositiveFloat | None
    weight_averaging: WeightAveraging
    stage_name: str = runtime("triplet")
    embed: Embed | None = runtime()
    parameters: Callable[[nn.Module], Any] | None = runtime()

    name = "triplet"

    def _embed(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        z = self.embed(model, inputs) if self.embed is not None else model(inputs)
        return nn.functional.normalize(z, dim=1) if self.normalize else z

    @torch.no_grad()
    def _all_distances(self, model: nn.Module, train: TensorSet) -> torch.Tensor:
        was = model.training
        model.eval()
        z = torch.cat([self._embed(model, x).float() for x, _ in train.batches(max(self.batch_size, 64))])
        model.train(was)
        return pairwise_squared_distances(z, z).cpu()

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        device = ctx.device
        model.to(device)
        train = data.train.to(device)
        gen = ctx.generator(offset=31)
        sampler = TripletSampler(train.labels, gen)
        if not sampler.usable:
            ctx.log_metric(f"{self.stage_name}/skipped", 1.0, 0)
            return model

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
            dist = self._all_distances(model, train) if self.mining == "semihard" else None
            anchors = sampler.anchors()
            for start in range(0, len(anchors), self.batch_size):
                yield sampler.sample(anchors[start:start + self.batch_size], self.mining, dist, self.margin)

        def step(triplets: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> Step:
            a, p, n = triplets
            idx = torch.cat([a, p, n]).to(device)
            with autocast(ctx):
                z = self._embed(model, {k: v[idx] for k, v in train.inputs.items()}).float()
            za, zp, zn = z.split(len(a))
            losses = triplet_margin_loss(za, zp, zn, self.margin, reduction="none")
            loss = losses.sum() if self.reduction == "sum" else losses.mean()
            return Step(loss, len(a), {"active_triplets": (float((losses > 0).sum()), float(len(a)))})

        train_epochs(model, trainable(model, self.parameters), ctx, stage=self.stage_name, epochs=self.epochs,
                     optimisation=Optimisation(self.optimizer, self.lr, self.weight_decay, self.momentum,
                                               self.scheduler, self.grad_clip,
                                               self.weight_averaging),
                     batches=batches, step=step)
        return model
