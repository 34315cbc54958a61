"""The pre-training losses of Section 3.5: L_re, L_st, L_ss (and their weighted sum).

Distances are Euclidean norms of differences, clamped under the square root so the gradient is
finite where two projections coincide (the j = k terms of L_ss are exactly zero).
"""
from __future__ import annotations

import torch


def _norm(x: torch.Tensor) -> torch.Tensor:
    """||x||_2 over the last dimension, with a finite gradient at 0."""
    return (x * x).sum(-1).clamp_min(1e-12).sqrt()


def reconstruction_loss(recon: torch.Tensor, apex: torch.Tensor) -> torch.Tensor:
    """L_re: mean absolute pixel error between reconstructed and true apex, (B, 3, H, W) each."""
    return (recon - apex).abs().mean()


def shape_texture_loss(f_shape: torch.Tensor, f_texture: torch.Tensor, f_anchor: torch.Tensor,
                       margin: float) -> torch.Tensor:
    """L_st: every projected shape vector nearer the batch-mean shape anchor than its own texture.

    ``f_shape``, ``f_texture``: (n, 2m, p) projections f(S_i^j), f(T_i^j) of the expansion sets;
    ``f_anchor``: (p,) = f(S_bar), S_bar the mean shape vector over the n * 2m views. Mean of
    max(0, ||f(S_bar) - f(S_i^j)|| - ||f(S_i^j) - f(T_i^j)|| + eps) over i and j.
    """
    d_anchor = _norm(f_anchor.view(1, 1, -1) - f_shape)  # (n, 2m)
    d_texture = _norm(f_shape - f_texture)  # (n, 2m)
    return torch.relu(d_anchor - d_texture + margin).mean()


def onset_apex_loss(f_shape: torch.Tensor, is_apex: torch.Tensor, margin: float) -> torch.Tensor:
    """L_ss: views of the same frame together, onset views at least ``margin`` from apex views.

    ``f_shape``: (n, 2m, p) projected shape vectors of one sample's onset and apex expansion sets;
    ``is_apex``: (2m,) bool, the label y_j. Mean over i, j, k (j = k included, as the paper's
    1/(2m)^2) of [y_j = y_k] ||.|| + [y_j != y_k] max(0, eps - ||.||).
    """
    diff = f_shape[:, :, None] - f_shape[:, None]  # (n, 2m, 2m, p)
    k = f_shape.shape[1]
    eye = torch.eye(k, dtype=torch.bool, device=f_shape.device)
    dist = torch.where(eye, torch.zeros((), device=f_shape.device), _norm(diff))  # (n, 2m, 2m)
    same = is_apex.view(-1, 1) == is_apex.view(1, -1)  # (2m, 2m)
    return torch.where(same, dist, torch.relu(margin - dist)).mean()
