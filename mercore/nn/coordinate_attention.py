"""Coordinate Attention (Hou, Zhou & Feng, CVPR 2021) for images and for video volumes.

The 2D block pools the input along W and along H separately (keeping the position along the
other axis), concatenates the two directional descriptors, transforms them with a shared 1x1
conv + BN + h-swish, splits them again and turns each half into a sigmoid attention map by its
own 1x1 conv. The input is multiplied by both maps, so every output position is weighted by
its row and its column.

The 3D block extends the same idea to (B, C, T, H, W) video features: three directional
descriptors (along T, H and W, each averaged over the two other axes), one shared transform,
three sigmoid maps. ``mode="frame"`` instead applies the 2D block to every frame (the other
reading of "CA in I3D"); both keep the input's shape.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["CoordinateAttention", "CoordinateAttention3D", "HSwish"]


class HSwish(nn.Module):
    """x * relu6(x + 3) / 6, the non-linearity of the CA paper."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * nn.functional.relu6(x + 3.0) / 6.0


def _mid_channels(channels: int, reduction: int, min_channels: int) -> int:
    return max(min_channels, channels // reduction)


class CoordinateAttention(nn.Module):
    """Coordinate Attention for (B, C, H, W) feature maps.

    Args:
        channels: input (and output) channels C.
        reduction: the shared transform has ``max(min_channels, C // reduction)`` channels.
        min_channels: lower bound of the reduced width (8 in the reference code).

    Shape:
        - Input: (B, C, H, W)
        - Output: (B, C, H, W)

    Example:
        >>> ca = CoordinateAttention(16)
        >>> ca(torch.randn(2, 16, 8, 6)).shape
        torch.Size([2, 16, 8, 6])
    """

    def __init__(self, channels: int, reduction: int = 32, min_channels: int = 8) -> None:
        super().__init__()
        mid = _mid_channels(channels, reduction, min_channels)
        self.channels = channels
        self.transform = nn.Sequential(nn.Conv2d(channels, mid, 1, bias=False), nn.BatchNorm2d(mid), HSwish())
        self.attn_h = nn.Conv2d(mid, channels, 1)
        self.attn_w = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"CoordinateAttention expects (B, {self.channels}, H, W), got {tuple(x.shape)}")
        _, _, h, w = x.shape
        pooled_h = x.mean(dim=3, keepdim=True)                      # (B, C, H, 1)
        pooled_w = x.mean(dim=2, keepdim=True).transpose(2, 3)      # (B, C, W, 1)
        y = self.transform(torch.cat([pooled_h, pooled_w], dim=2))  # (B, mid, H + W, 1)
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = torch.sigmoid(self.attn_h(y_h))                       # (B, C, H, 1)
        a_w = torch.sigmoid(self.attn_w(y_w.transpose(2, 3)))       # (B, C, 1, W)
        return x * a_h * a_w


class CoordinateAttention3D(nn.Module):
    """Coordinate Attention for (B, C, T, H, W) video features.

    Args:
        channels: input (and output) channels C.
        reduction, min_channels: width of the shared transform, as in :class:`CoordinateAttention`.
        mode: ``"thw"`` pools along T, H and W (three directional maps);
            ``"frame"`` applies the 2D block to every frame independently.

    Shape:
        - Input: (B, C, T, H, W)
        - Output: (B, C, T, H, W)

    Example:
        >>> ca = CoordinateAttention3D(16)
        >>> ca(torch.randn(2, 16, 4, 8, 6)).shape
        torch.Size([2, 16, 4, 8, 6])
    """

    def __init__(self, channels: int, reduction: int = 32, min_channels: int = 8, mode: str = "thw") -> None:
        super().__init__()
        if mode not in ("thw", "frame"):
            raise ValueError(f"mode must be 'thw' or 'frame', got {mode!r}")
        self.channels = channels
        self.mode = mode
        if mode == "frame":
            self.frame = CoordinateAttention(channels, reduction, min_channels)
            return
        mid = _mid_channels(channels, reduction, min_channels)
        self.transform = nn.Sequential(nn.Conv1d(channels, mid, 1, bias=False), nn.BatchNorm1d(mid), HSwish())
        self.attn_t = nn.Conv1d(mid, channels, 1)
        self.attn_h = nn.Conv1d(mid, channels, 1)
        self.attn_w = nn.Conv1d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.channels:
            raise ValueError(f"CoordinateAttention3D expects (B, {self.channels}, T, H, W), got {tuple(x.shape)}")
        b, c, t, h, w = x.shape
        if self.mode == "frame":
            frames = x.transpose(1, 2).reshape(b * t, c, h, w)
            return self.frame(frames).reshape(b, t, c, h, w).transpose(1, 2)
        pooled_t = x.mean(dim=(3, 4))                                # (B, C, T)
        pooled_h = x.mean(dim=(2, 4))                                # (B, C, H)
        pooled_w = x.mean(dim=(2, 3))                                # (B, C, W)
        y = self.transform(torch.cat([pooled_t, pooled_h, pooled_w], dim=2))  # (B, mid, T + H + W)
        y_t, y_h, y_w = torch.split(y, [t, h, w], dim=2)
        a_t = torch.sigmoid(self.attn_t(y_t)).view(b, c, t, 1, 1)
        a_h = torch.sigmoid(self.attn_h(y_h)).view(b, c, 1, h, 1)
        a_w = torch.sigmoid(self.attn_w(y_w)).view(b, c, 1, 1, w)
        return x * a_t * a_h * a_w
