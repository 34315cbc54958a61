"""Episodic N-way K-shot prototypical meta-learning (Snell et al. 2017, with cosine similarity).

An episode draws, for each of N classes, K support and Q query samples from the fold's
*training* samples only (the sampler is given nothing else). Queries are classified by the
softmax over ``scale * cos(query, centroid)`` of the support centroids; the loss is the
cross-entropy. ``episodes_per_batch`` episodes are averaged per optimiser step.

Small classes (a fold can hold fewer than K + Q samples of a class): a class with n >= 2
samples uses ``k = min(K, n - 1)`` support and ``q = min(Q, n - k)`` query samples, so it always
has at least one of each; a class with a single sample is support-only (it still competes as
a centroid) and a class without samples is left out (its logit is masked). When fewer than N
classes are present the episode is simply narrower.

After training the model's prototype classifier receives the final centroids: the mean
embedding of *all* training samples of each class (``centroids="all"``, default: the most
reliable estimate on small corpora) or of one K-shot support set per class
(``centroids="support"``). The model then predicts any test subject from these centroids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import (Annotated, Any, Callable, Iterator, Literal, Mapping, Protocol, Sequence, cast,
                    runtime_checkable)

import torch
from torch import nn

from ..data.tensors import FoldData, TensorSet
from ..interfaces import StageContext, Trainer
from ..nn.losses import Embeddings, class_centroids, cosine_logits, prototypical_loss
from ..settings import AtLeast, NonNegativeFloat, PositiveFloat, PositiveInt, Settings, runtime
from .loop import Optimisation, Step, WeightAveraging, autocast, train_epochs, trainable

__all__ = ["Episode", "EpisodeSampler", "EpisodicTrainer", "PrototypeClassifier", "PrototypeModel"]


@dataclass
class Episode:
    """Indices into the sampler's labelled set and their labels (original class ids)."""

    support: torch.Tensor
    support_labels: torch.Tensor
    query: torch.Tensor
    query_labels: torch.Tensor

    @property
    def classes(self) -> list[int]:
        return sorted(set(self.support_labels.tolist()))


class EpisodeSampler:
    """N-way K-shot episodes from one labelled set (give it the training fold's labels only).

    Args:
        labels: (N,) labels of the samples that may be drawn.
        n_way: classes per episode (``None``: every class present).
        k_shot, q_query: support and query samples per class (reduced for small classes).
        generator: seeded generator, so episodes repeat.
    """

    def __init__(self, labels: torch.Tensor, n_way: int | None = None, k_shot: int = 5, q_query: int = 5,
                 generator: torch.Generator | None = None) -> None:
        if k_shot < 1 or q_query < 1:
            raise ValueError(f"k_shot and q_query must be >= 1, got {k_shot}, {q_query}")
        self.labels = labels.cpu().long()
        self.n_way, self.k_shot, self.q_query = n_way, k_shot, q_query
        self.gen = generator or torch.Generator().manual_seed(0)
        self.by_class = {int(c): torch.nonzero(self.labels == c).flatten() for c in self.labels.unique()}

    @property
    def usable(self) -> bool:
        """Two classes present and at least one of them can supply a query."""
        return len(self.by_class) >= 2 and any(len(v) >= 2 for v in self.by_class.values())

    def shots(self, n: int) -> tuple[int, int]:
        """(support, query) counts for a class with ``n`` samples."""
        if n <= 1:
            return n, 0
        k = min(self.k_shot, n - 1)
        return k, min(self.q_query, n - k)

    def sample(self) -> Episode:
        classes = sorted(self.by_class)
        if self.n_way is not None and self.n_way < len(classes):
            pick = torch.randperm(len(classes), generator=self.gen)[:self.n_way]
            classes = sorted(classes[i] for i in pick.tolist())
        s_idx, s_lab, q_idx, q_lab = [], [], [], []
        for c in classes:
            pool = self.by_class[c]
            k, q = self.shots(len(pool))
            perm = pool[torch.randperm(len(pool), generator=self.gen)]
            s_idx.append(perm[:k])
            q_idx.append(perm[k:k + q])
            s_lab.append(torch.full((k,), c, dtype=torch.long))
            q_lab.append(torch.full((q,), c, dtype=torch.long))
        return Episode(torch.cat(s_idx), torch.cat(s_lab), torch.cat(q_idx), torch.cat(q_lab))


class PrototypeClassifier(nn.Module):
    """Holds class centroids (one set per embedding stream) and turns embeddings into logits
    ``scale * sum_s w_s cos(z_s, c_s)``. Before :meth:`set_centroids` every logit is 0.

    Shape:
        - Input: (B, D_s) per stream (a tensor or a tuple of tensors)
        - Output: (B, num_classes)
    """

    present: torch.Tensor  # a buffer, as are centroid_0, centroid_1, ...

    def __init__(self, num_classes: int, dims: Sequence[int], weights: Sequence[float] | None = None,
                 scale: float = 10.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.weights = [float(w) for w in (weights if weights is not None else [1.0] * len(dims))]
        if len(self.weights) != len(dims):
            raise ValueError(f"{len(self.weights)} weights for {len(dims)} streams")
        self.scale = float(scale)
        for i, d in enumerate(dims):
            self.register_buffer(f"centroid_{i}", torch.zeros(num_classes, d))
        self.register_buffer("present", torch.zeros(num_classes, dtype=torch.bool))

    @property
    def centroids(self) -> list[torch.Tensor]:
        return [getattr(self, f"centroid_{i}") for i in range(len(self.weights))]

    @property
    def fitted(self) -> bool:
        return bool(self.present.any())

    @torch.no_grad()
    def set_centroids(self, centroids: Sequence[torch.Tensor], present: torch.Tensor) -> None:
        for buf, c in zip(self.centroids, centroids):
            buf.copy_(c.detach().to(buf.dtype))
        self.present.copy_(present)

    def forward(self, embeddings: Embeddings) -> torch.Tensor:
        if not self.fitted:
            first = embeddings if isinstance(embeddings, torch.Tensor) else embeddings[0]
            return first.new_zeros(first.shape[0], self.num_classes)
        return cosine_logits(embeddings, self.centroids, self.weights, self.scale, self.present)


@runtime_checkable
class PrototypeModel(Protocol):
    """What :class:`EpisodicTrainer` needs of a model: embeddings of a batch (one tensor per
    stream) and a :class:`PrototypeClassifier` to receive the final centroids."""

    prototypes: PrototypeClassifier

    def embed(self, batch: dict[str, torch.Tensor]) -> Embeddings: ...


def _as_tuple(z: Embeddings) -> tuple[torch.Tensor, ...]:
    return (z,) if isinstance(z, torch.Tensor) else tuple(z)


@dataclass(kw_only=True)
class EpisodicTrainer(Trainer, Settings):
    """Prototypical meta-learning of ``model.embed`` with ``model.prototypes`` (a
    :class:`PrototypeClassifier`) as the classifier; sets its final centroids.

    Args:
        optimizer, lr, momentum, weight_decay: the optimiser (MPFNet: SGD 0.05, momentum 0.9).
        epochs, episodes_per_epoch, episodes_per_batch: the schedule (4 episodes per step).
        n_way, k_shot, q_query: episode shape (``n_way=None``: all classes of the fold).
        centroids: ``all`` (mean of every training sample per class) or ``support``.
        scale: overrides the classifier's similarity scale when given.
        reduction: ``mean`` or ``sum`` of an episode's cross-entropy over its queries.
        embed: ``embed(model, inputs) -> embeddings``; default ``model.embed(inputs)``.
    """

    section = "meta"
    defaults_key = "episodic"

    optimizer: str
    lr: PositiveFloat
    momentum: NonNegativeFloat
    weight_decay: NonNegativeFloat
    epochs: PositiveInt
    episodes_per_epoch: PositiveInt
    episodes_per_batch: PositiveInt
    n_way: Annotated[int, AtLeast(2)] | None
    k_shot: PositiveInt
    q_query: PositiveInt
    centroids: Literal["all", "support"]
    scale: PositiveFloat | None
    reduction: Literal["mean", "sum"]
    scheduler: Mapping[str, Any] | None
    grad_clip: PositiveFloat | None
    weight_averaging: WeightAveraging
    stage_name: str = runtime("meta")
    embed: Callable[[nn.Module, dict[str, torch.Tensor]], Embeddings] | None = runtime()
    parameters: Callable[[nn.Module], Any] | None = runtime()

    name = "episodic"

    def _embed(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        # without an embed function, fit() has checked that the model is a PrototypeModel
        z = self.embed(model, inputs) if self.embed is not None else cast(PrototypeModel, model).embed(inputs)
        return tuple(t.float() for t in _as_tuple(z))

    @torch.no_grad()
    def embed_all(self, model: nn.Module, data: TensorSet, device: torch.device, batch_size: int = 64
                  ) -> tuple[torch.Tensor, ...]:
        """Embeddings of every sample of ``data`` (eval mode), per stream."""
        model.eval()
        parts = [self._embed(model, {k: v.to(device) for k, v in x.items()}) for x, _ in data.batches(batch_size)]
        return tuple(torch.cat([p[s] for p in parts]) for s in range(len(parts[0])))

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        head = getattr(model, "prototypes", None)
        if (not isinstance(head, PrototypeClassifier)
                or (self.embed is None and not isinstance(model, PrototypeModel))):
            raise TypeError(f"episodic training needs a prototype model (PrototypeModel: an embed(batch) method and "
                            f"a PrototypeClassifier as .prototypes); {type(model).__name__} has not")
        device = ctx.device
        model.to(device)
        weights, scale = head.weights, self.scale if self.scale is not None else head.scale
        train = data.train.to(device)
        gen = ctx.generator(offset=53)
        sampler = EpisodeSampler(train.labels, self.n_way, self.k_shot, self.q_query, gen)
        if not (sampler.usable and self.epochs > 0):
            ctx.log_metric(f"{self.stage_name}/skipped", 1.0, 0)
            self.set_final_centroids(model, train, ctx, sampler)
            self.audit(model, train, ctx, sampler, 0)
            return model

        def batches(epoch: int) -> Iterator[list[Episode]]:
            for _ in range(max(1, self.episodes_per_epoch // max(1, self.episodes_per_batch))):
                yield [sampler.sample() for _ in range(self.episodes_per_batch)]

        def step(episodes: list[Episode]) -> Step:
            loss: torch.Tensor | float = 0.0
            correct, seen = 0, 0
            for ep in episodes:
                idx = torch.cat([ep.support, ep.query]).to(device)
                with autocast(ctx):
                    z = self._embed(model, {k: v[idx] for k, v in train.inputs.items()})
                ns = len(ep.support)
                ep_loss, logits = prototypical_loss([t[:ns] for t in z], ep.support_labels.to(device),
                                                    [t[ns:] for t in z], ep.query_labels.to(device),
                                                    ctx.num_classes, weights, scale, self.reduction)
                loss = loss + ep_loss / self.episodes_per_batch
                correct += int((logits.argmax(1).cpu() == ep.query_labels).sum())
                seen += len(ep.query)
            assert isinstance(loss, torch.Tensor)  # there is at least one episode
            return Step(loss, 1, {"query_acc": (float(correct), float(seen))})

        train_epochs(model, trainable(model, self.parameters), ctx, stage=self.stage_name, epochs=self.epochs,
                     optimisation=Optimisation(self.optimizer, self.lr, self.weight_decay, self.momentum,
                                               self.scheduler, self.grad_clip,
                                               self.weight_averaging),
                     batches=batches, step=step,
                     after_epoch=lambda epoch, means: self.audit(model, train, ctx, sampler, epoch))
        self.set_final_centroids(model, train, ctx, sampler)
        return model

    def audit(self, model: nn.Module, train: TensorSet, ctx: StageContext, sampler: EpisodeSampler,
              epoch: int) -> bool:
        """The leakage audit of this epoch's model as it would predict: with the centroids it would
        end with (the sampler's random state kept, so the run is the same with the audit off).
        Returns False: the audit never stops training."""
        if ctx.audit is None:
            return False
        state = sampler.gen.get_state()
        with torch.no_grad():
            self.set_final_centroids(model, train, ctx, sampler)
        sampler.gen.set_state(state)
        ctx.audit(model, epoch)
        return False

    def set_final_centroids(self, model: nn.Module, train: TensorSet, ctx: StageContext,
                            sampler: EpisodeSampler) -> None:
        """Centroids of the training samples (all, or one K-shot support set) into ``model.prototypes``."""
        if self.centroids == "support":
            by_class = sampler.by_class
            idx = torch.cat([v[torch.randperm(len(v), generator=sampler.gen)[:self.k_shot]] for v in by_class.values()])
            train = train.subset(idx.sort().values)
        z = self.embed_all(model, train, ctx.device)
        cents, present = class_centroids(z, train.labels.to(z[0].device), ctx.num_classes)
        head = model.prototypes
        assert isinstance(head, PrototypeClassifier)  # fit() has checked it
        head.set_centroids(cents, present)
