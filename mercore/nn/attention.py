"""CBAM attention blocks (Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018).

Shared by DFR-Net (its CA/SA, eqs. 13-14) and RRMFNet (its AAB). Each module returns the
*re-weighted* input, ``x * weights(x)``; ``weights(x)`` gives the attention map itself.

Shape:
    ChannelAttention: weights (B, C, 1, 1), output (B, C, H, W)
    SpatialAttention: weights (B, 1, H, W), output (B, C, H, W)
    CBAM: output (B, C, H, W)

Example:
    >>> import torch
    >>> block = CBAM(64, reduction=16, kernel_size=7)
    >>> block(torch.randn(2, 64, 8, 8)).shape
    torch.Size([2, 64, 8, 8])
"""
from __future__ import annotations

import torch
from torch import nn


def _check_4d(x: torch.Tensor, what: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{what} expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")


class ChannelAttention(nn.Module):
    """Channel attention: ``sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))`` times ``x``.

    The MLP is shared between the two pooled descriptors and made of two 1x1 convolutions
    ``C -> max(1, C // reduction) -> C`` with a ReLU in between.

    Args:
        channels: C, the number of input channels.
        reduction: the reduction ratio r of the hidden layer (CBAM uses 16).
        merge: ``"after_mlp"`` (CBAM: both descriptors go through the MLP, the results are
            summed) or ``"before_mlp"`` (the literal reading of DFR-Net's eq. 13: the pooled
            descriptors are summed first, then one MLP pass).
        bias: whether the 1x1 convolutions carry a bias.
    """

    def __init__(self, channels: int, reduction: int = 16, merge: str = "after_mlp", bias: bool = False) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"channels and reduction must be >= 1, got {channels}, {reduction}")
        if merge not in ("after_mlp", "before_mlp"):
            raise ValueError(f"unknown merge {merge!r}; choose after_mlp or before_mlp")
        hidden = max(1, channels // reduction)
        self.merge = merge
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=bias),
        )

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The channel attention map, (B, C, 1, 1) in (0, 1)."""
        _check_4d(x, type(self).__name__)
        avg = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        mx = x.amax(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        if self.merge == "after_mlp":
            return torch.sigmoid(self.mlp(avg) + self.mlp(mx))
        return torch.sigmoid(self.mlp(avg + mx))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)  # (B, C, H, W)


class SpatialAttention(nn.Module):
    """Spatial attention: ``sigmoid(conv_k([mean_c(x), max_c(x)]))`` times ``x``.

    Args:
        kernel_size: k of the single k x k convolution (2 -> 1 channels, "same" padding); CBAM
            found 7 best.
        bias: whether the convolution carries a bias.
    """

    def __init__(self, kernel_size: int = 7, bias: bool = False) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=bias)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial attention map, (B, 1, H, W) in (0, 1)."""
        _check_4d(x, type(self).__name__)
        avg = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
        mx = x.amax(dim=1, keepdim=True)  # (B, 1, H, W)
        return torch.sigmoid(self.conv(torch.cat([avg, mx], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)  # (B, C, H, W)


class CBAM(nn.Module):
    """Channel attention followed by spatial attention (the order CBAM found best).

    Args:
        channels, reduction, merge: see :class:`ChannelAttention`.
        kernel_size: see :class:`SpatialAttention`.
        channel, spatial: switch either part off (ablations such as DFR-Net's Table 6); with
            both off the module is the identity.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, *, merge: str = "after_mlp",
                 channel: bool = True, spatial: bool = True) -> None:
        super().__init__()
        self.ca = ChannelAttention(channels, reduction, merge=merge) if channel else nn.Identity()
        self.sa = SpatialAttention(kernel_size) if spatial else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sa(self.ca(x))  # (B, C, H, W)


__all__ = ["CBAM", "ChannelAttention", "SpatialAttention"]
