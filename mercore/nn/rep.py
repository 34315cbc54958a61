"""Structural re-parameterisation (RepVGG, Ding et al. CVPR 2021; RepConv as in DAMO-YOLO's RepGFPN).

During training a :class:`RepConv` sums three linear branches, a 3x3 conv + BN, a 1x1 conv + BN
and (optionally) a BN on the identity, then applies the activation. Every branch is linear at
inference (BN uses its running statistics), so their sum equals one 3x3 convolution with a
bias: :meth:`RepConv.reparameterize` swaps the branches for that convolution, and
:func:`reparameterize` does it for every ``RepConv`` in a model. The fused form computes the
same function in eval mode (up to float rounding) at the cost of a single conv.

Shape:
    RepConv: (B, C_in, H, W) -> (B, C_out, H / stride, W / stride)

Example:
    >>> import torch
    >>> block = RepConv(8, 8, identity=True).eval()
    >>> x = torch.randn(1, 8, 5, 5)
    >>> y = block(x)
    >>> _ = block.reparameterize()
    >>> torch.allclose(block(x), y, atol=1e-5)
    True
"""
from __future__ import annotations

import torch
from torch import nn


def fuse_conv_bn(weight: torch.Tensor, bn: nn.BatchNorm2d, bias: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel and bias of ``bn(conv(x))`` as one conv, BN in inference mode (running stats)."""
    mean, var = bn.running_mean, bn.running_var
    assert mean is not None and var is not None, "the BN must track running statistics"
    std = (var + bn.eps).sqrt()  # (C_out,)
    scale = bn.weight / std  # (C_out,)
    conv_bias = bias if bias is not None else torch.zeros_like(mean)
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias + (conv_bias - mean) * scale


class RepConv(nn.Module):
    """3x3 conv + BN, 1x1 conv + BN and optional identity BN, summed, then ``act``.

    Args:
        in_channels, out_channels: C_in, C_out.
        stride: 1 or 2 (the 1x1 branch uses the same stride; identity needs stride 1).
        identity: add the BN-on-identity branch (RepVGG); needs C_in == C_out and stride 1.
            DAMO-YOLO's RepGFPN uses it off.
        act: activation after the sum (``nn.ReLU()`` by default, as RepGFPN).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, identity: bool = False,
                 act: nn.Module | None = None) -> None:
        super().__init__()
        if identity and (in_channels != out_channels or stride != 1):
            raise ValueError(f"the identity branch needs in == out channels and stride 1, got "
                             f"{in_channels} -> {out_channels}, stride {stride}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.act = act if act is not None else nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, stride=stride, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn_id = nn.BatchNorm2d(out_channels) if identity else None
        self.fused: nn.Conv2d | None = None

    @property
    def is_fused(self) -> bool:
        return self.fused is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.act(self.fused(x))  # (B, C_out, H', W')
        out = self.bn3(self.conv3(x)) + self.bn1(self.conv1(x))  # (B, C_out, H', W')
        if self.bn_id is not None:
            out = out + self.bn_id(x)
        return self.act(out)

    @torch.no_grad()
    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 kernel (C_out, C_in, 3, 3) and bias (C_out,) of the three branches."""
        k3, b3 = fuse_conv_bn(self.conv3.weight, self.bn3)
        k1, b1 = fuse_conv_bn(self.conv1.weight, self.bn1)
        kernel, bias = k3 + nn.functional.pad(k1, [1, 1, 1, 1]), b3 + b1
        if self.bn_id is not None:
            eye = torch.zeros_like(k3)
            idx = torch.arange(self.in_channels, device=eye.device)
            eye[idx, idx, 1, 1] = 1.0  # the identity as a 3x3 kernel
            kid, bid = fuse_conv_bn(eye, self.bn_id)
            kernel, bias = kernel + kid, bias + bid
        return kernel, bias

    @torch.no_grad()
    def reparameterize(self) -> "RepConv":
        """Replace the branches by their equivalent single 3x3 conv (inference form), in place."""
        if self.fused is not None:
            return self
        kernel, bias = self.equivalent_kernel_bias()
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, stride=self.stride, padding=1, bias=True)
        conv = conv.to(device=kernel.device, dtype=kernel.dtype)
        assert conv.bias is not None  # made with bias=True
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        self.fused = conv
        del self.conv3, self.bn3, self.conv1, self.bn1, self.bn_id
        self.bn_id = None
        return self

    fuse = reparameterize


def reparameterize(model: nn.Module) -> nn.Module:
    """Fuse every :class:`RepConv` of ``model`` in place (call after training, in eval mode)."""
    for module in model.modules():
        if isinstance(module, RepConv):
            module.reparameterize()
    return model


__all__ = ["RepConv", "fuse_conv_bn", "reparameterize"]
