"""Metric-learning losses: the triplet margin loss (FaceNet) and the prototypical loss with
cosine similarity to class centroids (Snell et al. 2017 as used by MPFNet, eq. 8-12).

Embeddings that belong to several streams (MPFNet-P: a GFE and an AFE embedding per sample)
are passed as a tuple; their cosine similarities are summed with ``weights``
(``d_sum = d_GFE + gamma * d_AFE``).
"""
from __future__ import annotations

from typing import Sequence, cast

import torch
from torch import nn

__all__ = ["class_centroids", "cosine_logits", "pairwise_squared_distances", "prototypical_loss",
           "triplet_margin_loss"]

Embeddings = torch.Tensor | Sequence[torch.Tensor]


def pairwise_squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 for every pair, (N, M), never negative."""
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ y.t() + y.pow(2).sum(1)[None, :]).clamp(min=0)


def triplet_margin_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                        margin: float = 0.2, reduction: str = "mean") -> torch.Tensor:
    """max(||a - p||^2 - ||a - n||^2 + margin, 0) per triplet (squared Euclidean distances).

    Args:
        anchor, positive, negative: (B, D) embeddings.
        margin: alpha.
        reduction: ``mean`` | ``sum`` (the paper's eq. sums over anchors) | ``none``.

    Example:
        >>> a = torch.tensor([[0.0, 0.0]]); p = torch.tensor([[1.0, 0.0]]); n = torch.tensor([[0.0, 2.0]])
        >>> triplet_margin_loss(a, p, n, margin=0.5)  # max(1 - 4 + 0.5, 0)
        tensor(0.)
    """
    if not (anchor.shape == positive.shape == negative.shape) or anchor.dim() != 2:
        raise ValueError(f"anchor, positive, negative must be equal (B, D); got {tuple(anchor.shape)}, "
                         f"{tuple(positive.shape)}, {tuple(negative.shape)}")
    d_ap = (anchor - positive).pow(2).sum(1)
    d_an = (anchor - negative).pow(2).sum(1)
    losses = torch.relu(d_ap - d_an + margin)
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"reduction must be mean, sum or none, got {reduction!r}")


def _streams(x: Embeddings) -> list[torch.Tensor]:
    return [x] if isinstance(x, torch.Tensor) else list(x)


def class_centroids(embeddings: Embeddings, labels: torch.Tensor, num_classes: int
                    ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Mean embedding of every class, per stream.

    Returns:
        ``(centroids, present)``: a list with one (num_classes, D) tensor per stream (zeros for
        classes without samples) and a (num_classes,) bool mask of the classes that have samples.
    """
    streams = _streams(embeddings)
    onehot = nn.functional.one_hot(labels.long(), num_classes).to(streams[0].dtype)  # (N, C)
    counts = onehot.sum(0)                                                           # (C,)
    present = counts > 0
    cents = [(onehot.t() @ e) / counts.clamp(min=1)[:, None] for e in streams]
    return cents, present


def cosine_logits(query: Embeddings, centroids: Embeddings, weights: Sequence[float] | None = None,
                  scale: float = 10.0, present: torch.Tensor | None = None) -> torch.Tensor:
    """``scale * sum_s w_s cos(q_s, c_s)`` for every query and class, (Q, C).

    Classes not ``present`` (no centroid) get a logit of -1e4, so they are never predicted and
    take no probability mass in the softmax.

    Example:
        >>> q = torch.tensor([[1.0, 0.0]]); c = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
        >>> cosine_logits(q, c, scale=1.0)
        tensor([[1., 0.]])
    """
    qs, cs = _streams(query), _streams(centroids)
    if len(qs) != len(cs):
        raise ValueError(f"{len(qs)} query streams but {len(cs)} centroid streams")
    weights = list(weights) if weights is not None else [1.0] * len(qs)
    if len(weights) != len(qs):
        raise ValueError(f"{len(weights)} weights for {len(qs)} streams")
    # a Tensor: there is at least one stream (sum() gives its start, 0, only for none)
    logits = cast(torch.Tensor, sum(w * nn.functional.normalize(q, dim=1) @ nn.functional.normalize(c, dim=1).t()
                                    for w, q, c in zip(weights, qs, cs)))
    logits = scale * logits
    if present is not None:
        logits = logits.masked_fill(~present.to(logits.device)[None, :], -1e4)
    return logits


def prototypical_loss(support: Embeddings, support_labels: torch.Tensor, query: Embeddings,
                      query_labels: torch.Tensor, num_classes: int, weights: Sequence[float] | None = None,
                      scale: float = 10.0, reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the softmax over scaled cosine similarities of the queries to the
    support centroids, the ``mean`` or ``sum`` over the queries.

    Returns:
        ``(loss, logits)``; logits are (Q, num_classes), classes absent from the support masked.
    """
    cents, present = class_centroids(support, support_labels, num_classes)
    if not bool(present[query_labels.long()].all()):
        raise ValueError("every query label needs at least one support sample of its class")
    logits = cosine_logits(query, cents, weights, scale, present)
    return nn.functional.cross_entropy(logits, query_labels.long(), reduction=reduction), logits
