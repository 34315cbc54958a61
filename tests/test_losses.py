"""Metric-learning losses and Coordinate Attention blocks against hand computations."""
from __future__ import annotations

import math

import pytest
import torch

from mercore.nn.coordinate_attention import CoordinateAttention, CoordinateAttention3D
from mercore.nn.losses import (class_centroids, cosine_logits, pairwise_squared_distances, prototypical_loss,
                               triplet_margin_loss)


def test_triplet_loss_hand_computed():
    a = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 2.0]])   # d_ap^2 = 1, 1
    n = torch.tensor([[0.0, 2.0], [1.0, 1.5]])   # d_an^2 = 4, 0.25
    # max(1 - 4 + 0.5, 0) = 0 ; max(1 - 0.25 + 0.5, 0) = 1.25
    per = triplet_margin_loss(a, p, n, margin=0.5, reduction="none")
    assert per.tolist() == pytest.approx([0.0, 1.25])
    assert triplet_margin_loss(a, p, n, margin=0.5).item() == pytest.approx(0.625)
    assert triplet_margin_loss(a, p, n, margin=0.5, reduction="sum").item() == pytest.approx(1.25)
    with pytest.raises(ValueError):
        triplet_margin_loss(a, p, n[:1])


def test_pairwise_squared_distances():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert torch.allclose(pairwise_squared_distances(x, x), torch.tensor([[0.0, 25.0], [25.0, 0.0]]))


def test_centroids_and_cosine_logits_hand_computed():
    emb = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 2])
    (cents,), present = class_centroids(emb, labels, 3)
    assert cents.tolist() == [[2.0, 0.0], [0.0, 0.0], [0.0, 2.0]]
    assert present.tolist() == [True, False, True]
    q = torch.tensor([[1.0, 1.0]])
    logits = cosine_logits(q, cents, scale=2.0, present=present)
    c = 1 / math.sqrt(2)
    assert logits[0, 0].item() == pytest.approx(2 * c)
    assert logits[0, 2].item() == pytest.approx(2 * c)
    assert logits[0, 1].item() < -1e3           # absent class masked
    # two streams with weights: d_sum = d_1 + gamma d_2
    q2 = torch.tensor([[0.0, 1.0]])
    two = cosine_logits([q, q2], [cents, cents], weights=[1.0, 0.7], scale=1.0)
    assert two[0, 0].item() == pytest.approx(c + 0.7 * 0.0)
    assert two[0, 2].item() == pytest.approx(c + 0.7 * 1.0)


def test_prototypical_loss_hand_computed():
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s_lab = torch.tensor([0, 1])
    query = torch.tensor([[1.0, 0.0]])
    q_lab = torch.tensor([0])
    loss, logits = prototypical_loss(support, s_lab, query, q_lab, num_classes=2, scale=1.0)
    # cos = [1, 0]; CE = -log(e^1 / (e^1 + e^0))
    assert logits[0].tolist() == pytest.approx([1.0, 0.0])
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 1)))
    with pytest.raises(ValueError):  # a query class without support
        prototypical_loss(support[:1], s_lab[:1], query, torch.tensor([1]), num_classes=2)


def test_coordinate_attention_shapes_and_gating():
    ca = CoordinateAttention(16).eval()
    x = torch.randn(2, 16, 7, 5)
    y = ca(x)
    assert y.shape == x.shape
    assert (y.abs() <= x.abs() + 1e-6).all()    # sigmoid gates scale each value by (0, 1)
    for mode in ("thw", "frame"):
        ca3 = CoordinateAttention3D(24, mode=mode).eval()
        v = torch.randn(2, 24, 3, 6, 5)
        out = ca3(v)
        assert out.shape == v.shape
        assert (out.abs() <= v.abs() + 1e-6).all()
    with pytest.raises(ValueError):
        CoordinateAttention3D(8)(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError):
        CoordinateAttention(8)(torch.randn(1, 4, 4, 4))


def test_coordinate_attention_is_position_sensitive():
    """Different maps along H give different gates (the point of CA versus SE)."""
    torch.manual_seed(0)
    ca = CoordinateAttention3D(8, min_channels=4).eval()
    x = torch.ones(1, 8, 2, 4, 4)
    x[..., 0, :] = 5.0
    gate = ca(x) / x
    assert not torch.allclose(gate[..., 0, :], gate[..., 3, :])
