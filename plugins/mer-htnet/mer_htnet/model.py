"""The HTNet network (Wang et al., HTNet for micro-expression recognition, Neurocomputing 2024).

A NesT-style hierarchical transformer on the 28x28 four-region flow map: 7x7 patches embedded by
a 1x1 conv (16 patches on a 4x4 grid); at each level the grid is split into blocks, transformer
layers attend within each block, and block aggregation (3x3 conv, channel layer norm, 3x3 max-pool
stride 2) halves the grid and doubles the width, merging neighbouring blocks: 16 -> 4 -> 1 blocks.
With 28 / 7 = 4 patches a side and three levels every block holds one patch (HTNet's code keeps
the tokens per block constant, ``(4 / 2**2)**2 = 1``): attention is over a single token at every
level, and regions interact only through the aggregation convolutions. That is HTNet as published.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from mercore import DeclaredFeatures, PositiveInt, Probability, Settings, SupervisedTrainer


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channels of a (B, C, H, W) map (each position separately)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.weight + self.bias


class Attention(nn.Module):
    """Multi-head self-attention among the positions of a (B, C, h, w) block; 1x1 convs as projections.

    The head width is ``dim // heads`` (HTNet: 256 // 3 = 85, so 255 inner channels)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        inner = self.head_dim * heads
        self.scale = self.head_dim ** -0.5
        self.to_qkv = nn.Conv2d(dim, inner * 3, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.to_out = nn.Sequential(nn.Conv2d(inner, dim, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, self.head_dim, h * w).transpose(2, 3)  # (B, heads, N, d)
                   for t in self.to_qkv(x).chunk(3, dim=1))
        attn = self.dropout((q @ k.transpose(2, 3) * self.scale).softmax(dim=-1))  # (B, heads, N, N)
        out = (attn @ v).transpose(2, 3).reshape(b, self.heads * self.head_dim, h, w)
        return self.to_out(out)


class FeedForward(nn.Sequential):
    """Position-wise MLP as 1x1 convs: dim -> dim * mult -> dim with GELU."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__(nn.Conv2d(dim, dim * mult, 1), nn.GELU(), nn.Dropout(dropout),
                         nn.Conv2d(dim * mult, dim, 1), nn.Dropout(dropout))


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm, self.fn = ChannelLayerNorm(dim), fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class Transformer(nn.Module):
    """``depth`` pre-norm attention + MLP layers within each block; a learned scalar position
    embedding per token position (HTNet/NesT: one number per position, shared by channels)."""

    def __init__(self, dim: int, tokens: int, depth: int, heads: int, mlp_mult: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.pos_emb = nn.Parameter(torch.randn(tokens))
        self.layers = nn.ModuleList(
            nn.ModuleList([PreNorm(dim, Attention(dim, heads, dropout)), PreNorm(dim, FeedForward(dim, mlp_mult, dropout))])
            for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B * blocks, C, h, w)
        h, w = x.shape[-2:]
        x = x + self.pos_emb[:h * w].view(1, 1, h, w)
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        return x


def aggregate(dim_in: int, dim_out: int) -> nn.Sequential:
    """Block aggregation: 3x3 conv across block borders, channel layer norm, 3x3 max-pool stride 2."""
    return nn.Sequential(nn.Conv2d(dim_in, dim_out, 3, padding=1), ChannelLayerNorm(dim_out),
                         nn.MaxPool2d(3, stride=2, padding=1))


def to_blocks(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, C, n*h, n*w) -> (B*n*n, C, h, w): the grid cut into n x n blocks, row-major."""
    b, c, hh, ww = x.shape
    x = x.view(b, c, n, hh // n, n, ww // n).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * n * n, c, hh // n, ww // n)


def from_blocks(x: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`to_blocks`."""
    bnn, c, h, w = x.shape
    b = bnn // (n * n)
    return x.view(b, n, n, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, n * h, n * w)


@dataclass(frozen=True, kw_only=True)
class HTNetConfig(Settings):
    """HTNet's hyperparameters: the ``model`` section of config.yaml (as ``main_HTNet.py``:
    139.6M parameters with 3 classes)."""

    section = "model"

    image_size: PositiveInt
    patch_size: PositiveInt
    dim: PositiveInt  # width of the lowest level; doubles at every level up
    heads: PositiveInt  # heads of the lowest level; doubles at every level up
    levels: PositiveInt
    depths: tuple[PositiveInt, ...]  # transformer layers per level, lowest (most blocks) first
    mlp_mult: PositiveInt
    dropout: Probability
    in_channels: PositiveInt

    def __post_init__(self) -> None:
        grid = self.image_size // self.patch_size
        if self.image_size % self.patch_size or grid % 2 ** (self.levels - 1):
            raise ValueError(f"image_size {self.image_size} / patch_size {self.patch_size} must give a grid divisible "
                             f"by 2**(levels-1) = {2 ** (self.levels - 1)}")
        if len(self.depths) != self.levels:
            raise ValueError(f"depths {self.depths} must list one depth per level ({self.levels})")


class HTNetModel(nn.Module):
    """Patch embedding -> ``levels`` x (blockwise transformer, aggregation) -> LN, mean, linear."""

    def __init__(self, num_classes: int, cfg: HTNetConfig, stream: str = "flow") -> None:
        super().__init__()
        self.cfg, self.stream = cfg, stream
        p = cfg.patch_size
        grid = cfg.image_size // p
        self.blocks_per_side = [2 ** (cfg.levels - 1 - i) for i in range(cfg.levels)]  # 4, 2, 1
        tokens = (grid // self.blocks_per_side[0]) ** 2  # per block, the same at every level
        dims = [cfg.dim * 2 ** i for i in range(cfg.levels)]  # 256, 512, 1024
        self.embed = nn.Conv2d(cfg.in_channels * p * p, dims[0], 1)
        self.transformers = nn.ModuleList(
            Transformer(d, tokens, depth, cfg.heads * 2 ** i, cfg.mlp_mult, cfg.dropout)
            for i, (d, depth) in enumerate(zip(dims, cfg.depths)))
        self.aggregates = nn.ModuleList(
            [aggregate(dims[i], dims[i + 1]) for i in range(cfg.levels - 1)] + [nn.Identity()])
        self.norm = ChannelLayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, p*p*C, H/p, W/p): each patch's pixels stacked as channels (p1, p2, c)."""
        b, c, hh, ww = x.shape
        p = self.cfg.patch_size
        x = x.view(b, c, hh // p, p, ww // p, p).permute(0, 3, 5, 1, 2, 4)  # (B, p1, p2, C, h, w)
        return x.reshape(b, p * p * c, hh // p, ww // p)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = self.embed(self.patchify(batch[self.stream]))  # (B, dim, 4, 4)
        for n, transformer, agg in zip(self.blocks_per_side, self.transformers, self.aggregates):
            x = from_blocks(transformer(to_blocks(x, n)), n)  # attention within each of n x n blocks
            x = agg(x)  # (B, 2 dim, grid / 2, grid / 2); identity at the top level
        x = self.norm(x).mean(dim=(2, 3))  # (B, dims[-1])
        return self.head(x)  # (B, num_classes)


@dataclass(frozen=True, kw_only=True)
class HTNetSettings(Settings):
    """HTNet's sections of a resolved config (the method's ``config_class``), each typed: its input
    stream, its network and its one supervised stage. The core checks them before any work."""

    section = ""  # the top level: each field is a section

    features: DeclaredFeatures
    model: HTNetConfig
    train: SupervisedTrainer

    def __post_init__(self) -> None:
        if self.features.size != self.model.image_size:
            raise ValueError(f"features.size ({self.features.size}) must equal model.image_size "
                             f"({self.model.image_size}): the map the network reads")


def build_model(model_cfg: Mapping[str, Any] | HTNetConfig, num_classes: int) -> HTNetModel:
    """The model from the config's ``model`` section (a ConfigError names a bad key)."""
    cfg = model_cfg if isinstance(model_cfg, HTNetConfig) else HTNetConfig.from_config(model_cfg)
    return HTNetModel(num_classes, cfg)

