"""AHMSA-Net (Zhang et al., arXiv 2501.02539): a hierarchy of multi-scale attention levels on
the 28x28 u/v/strain map, joined by adaptive downsampling.

Layout (default config: 28x28 input, 7x7 patches, 3 levels, factor 2, depths (2, 2, 8)):

    flow (B, 3, 28, 28) --patch embedding--> (B, D, 4, 4)        16 patches
    level 1: 2 x MSA block (D)      -> adaptive downsampling -> (B, 2D, 2, 2)    4 patches
    level 2: 2 x MSA block (2D)     -> adaptive downsampling -> (B, 4D, 1, 1)    1 patch
    level 3: 8 x MSA block (4D)     -> LayerNorm -> Linear -> logits (B, num_classes)

Patches live on a (B, C, H, W) grid, one pixel per patch, as in HTNet (which AHMSA-Net builds
on), so the paper's "convolutions" for Q/K/V, projection and feed-forward are 1x1 convolutions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Mapping, Sequence

import torch
from torch import nn

from mercore import AtLeast, FeatureRequest, PositiveInt, Probability, Settings, SupervisedTrainer
from mercore.nn.attention import ChannelAttention


@dataclass(frozen=True, kw_only=True)
class AHMSANetConfig(Settings):
    """The ``model`` section of the config; every field is a YAML key (see config.yaml)."""

    section = "model"

    image_size: PositiveInt
    patch_size: PositiveInt
    in_channels: PositiveInt
    levels: PositiveInt
    downsample: Annotated[int, AtLeast(2)]
    depths: tuple[PositiveInt, ...]
    dim: PositiveInt
    heads: PositiveInt
    width_mult: PositiveInt
    mlp_ratio: PositiveInt
    reduction: PositiveInt
    down_kernel: PositiveInt
    pos_embedding: bool
    dropout: Probability

    def __post_init__(self) -> None:
        self.grid_sizes()  # raises on inconsistent sizes

    def grid_sizes(self) -> list[int]:
        """Side of the patch grid at each level, bottom to top, e.g. [4, 2, 1]."""
        if self.levels < 1 or self.downsample < 2:
            raise ValueError(f"model.levels must be >= 1 and model.downsample >= 2, got {self.levels}, {self.downsample}")
        if len(self.depths) != self.levels or min(self.depths) < 1:
            raise ValueError(f"model.depths needs one block count >= 1 per level ({self.levels}), got {list(self.depths)}")
        if self.image_size % self.patch_size:
            raise ValueError(f"model.image_size {self.image_size} is not a multiple of model.patch_size {self.patch_size}")
        if self.dim < self.heads or self.heads < 1 or self.mlp_ratio < 1 or self.width_mult < 1:
            raise ValueError("model.dim >= model.heads >= 1, model.mlp_ratio >= 1 and model.width_mult >= 1 are required")
        side = self.image_size // self.patch_size
        top = self.downsample ** (self.levels - 1)
        if side != top:
            raise ValueError(
                f"{self.levels} levels with downsampling factor {self.downsample} need a {top}x{top} patch grid at "
                f"the bottom so the top level holds one patch; image_size/patch_size = {side}. "
                f"Set model.image_size = {top * self.patch_size} (and the feature size) or change model.patch_size.")
        return [side // self.downsample ** level for level in range(self.levels)]

    def level_dims(self) -> list[int]:
        """Channels per level: ``dim * width_mult**level`` (HTNet doubles the width per level)."""
        return [self.dim * self.width_mult ** level for level in range(self.levels)]

    def level_heads(self) -> list[int]:
        """Attention heads per level, growing with the width as in HTNet."""
        return [self.heads * self.width_mult ** level for level in range(self.levels)]


class ChannelLayerNorm(nn.Module):
    """Eq. 3: LayerNorm over the channels of every patch of a (B, C, H, W) grid, with learnable
    scale gamma and shift beta (HTNet's ``LayerNorm``)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (x - mean_c) / sqrt(var_c + eps) * gamma + beta, through the fused kernel on channels-last
        y = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.gamma, self.beta, self.eps)
        return y.permute(0, 3, 1, 2)  # (B, C, H, W)


class PatchSpatialAttention(nn.Module):
    """The spatial attention module (eq. 4): Q, K, V by 1x1 convolution, multi-head scaled
    dot-product attention across the patches of the grid, heads concatenated, 1x1 conv projection.

    Head width is ``dim // heads`` (HTNet); with 3 heads at width 256 the heads hold 3 x 85 = 255
    channels, projected back to 256.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        inner = self.head_dim * heads
        self.to_qkv = nn.Conv2d(dim, 3 * inner, kernel_size=1, bias=False)
        self.proj = nn.Conv2d(inner, dim, kernel_size=1)
        self.dropout = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights softmax(Q K^T / sqrt(d)), (B, heads, N, N) with N = H * W."""
        q, k, _ = self._qkv(x)
        return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        qkv = self.to_qkv(x).reshape(b, 3, self.heads, self.head_dim, h * w)  # (B, 3, heads, d, N)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each (B, heads, N, d)
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        _, _, v = self._qkv(x)
        out = self.dropout(self.attention(x)) @ v  # (B, heads, N, d)
        out = out.transpose(-1, -2).reshape(b, self.heads * self.head_dim, h, w)  # heads concatenated
        return self.proj(out)  # (B, C, H, W)


class FeedForward(nn.Module):
    """The feed-forward module: two 1x1 convolutions ``C -> mlp_ratio*C -> C`` with GELU (HTNet)."""

    def __init__(self, dim: int, mlp_ratio: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(dim, dim * mlp_ratio, kernel_size=1), nn.GELU(), nn.Dropout(dropout),
            nn.Conv2d(dim * mlp_ratio, dim, kernel_size=1), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiScaleAttentionBlock(nn.Module):
    """One multi-scale attention block (Section 3.4, Fig. 1): three pre-LayerNorm residual steps,

        x = x + CA(LN(x));  x = x + SA(LN(x));  x = x + FFN(LN(x))

    CA is CBAM channel attention over the whole patch grid (global average and max pooling, a
    shared conv-ReLU-conv, summed, sigmoid) and returns the re-weighted input.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int, reduction: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_ca = ChannelLayerNorm(dim)
        self.channel = ChannelAttention(dim, reduction=reduction, merge="after_mlp")
        self.norm_sa = ChannelLayerNorm(dim)
        self.spatial = PatchSpatialAttention(dim, heads, dropout)
        self.norm_ff = ChannelLayerNorm(dim)
        self.ff = FeedForward(dim, mlp_ratio, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C, H, W)
        x = x + self.channel(self.norm_ca(x))
        x = x + self.spatial(self.norm_sa(x))
        return x + self.ff(self.norm_ff(x))


class AdaptiveDownsampling(nn.Module):
    """Eq. 2: conv (aggregates channels, ``C_l -> C_{l+1}``) -> LayerNorm (eq. 3) -> adaptive max
    pooling to the next level's grid, e.g. (B, D, 4, 4) -> (B, 2D, 2, 2)."""

    def __init__(self, dim_in: int, dim_out: int, out_side: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim_in, dim_out, kernel_size, padding=kernel_size // 2)
        self.norm = ChannelLayerNorm(dim_out)
        self.pool = nn.AdaptiveMaxPool2d(out_side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.norm(self.conv(x)))


class Level(nn.Module):
    """One level of the hierarchy: a learnable position embedding per patch (HTNet), then
    ``depth`` multi-scale attention blocks."""

    def __init__(self, dim: int, side: int, depth: int, heads: int, mlp_ratio: int, reduction: int,
                 pos_embedding: bool, dropout: float = 0.0) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1, dim, side, side)) if pos_embedding else None
        if self.pos is not None:
            nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[MultiScaleAttentionBlock(dim, heads, mlp_ratio, reduction, dropout)
                                      for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pos is not None:
            x = x + self.pos
        return self.blocks(x)


class AHMSANet(nn.Module):
    """AHMSA-Net on one input stream ``flow`` (B, 3, H, W): u, v, optical strain of the recombined
    facial regions. ``forward`` takes the batch dict and returns logits (B, num_classes)."""

    def __init__(self, config: AHMSANetConfig, num_classes: int, stream: str = "flow") -> None:
        super().__init__()
        self.config, self.stream = config, stream
        sides, dims, heads = config.grid_sizes(), config.level_dims(), config.level_heads()
        p = config.patch_size
        # patch embedding: each p x p x C patch flattened and mapped linearly to dims[0]
        self.patch_embed = nn.Sequential(
            nn.Unfold(kernel_size=p, stride=p),  # (B, C*p*p, N)
            nn.Unflatten(2, (sides[0], sides[0])),  # (B, C*p*p, H/p, W/p)
            nn.Conv2d(config.in_channels * p * p, dims[0], kernel_size=1),
        )
        self.levels = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for level in range(config.levels):
            self.levels.append(Level(dims[level], sides[level], config.depths[level], heads[level], config.mlp_ratio,
                                     config.reduction, config.pos_embedding, config.dropout))
            if level + 1 < config.levels:
                self.downsamples.append(AdaptiveDownsampling(dims[level], dims[level + 1], sides[level + 1],
                                                             config.down_kernel))
        self.out_features = dims[-1]
        self.head = nn.Sequential(ChannelLayerNorm(dims[-1]), nn.Flatten(1), nn.Linear(dims[-1], num_classes))

    def features(self, flow: torch.Tensor) -> list[torch.Tensor]:
        """The output of every level, bottom to top: [(B, D, 4, 4), (B, 2D, 2, 2), (B, 4D, 1, 1)]."""
        size = self.config.image_size
        if flow.dim() != 4 or flow.shape[1] != self.config.in_channels or flow.shape[-2:] != (size, size):
            raise ValueError(f"AHMSA-Net expects ({'B'}, {self.config.in_channels}, {size}, {size}) flow maps, "
                             f"got {tuple(flow.shape)}; set features size and model.image_size alike")
        x = self.patch_embed(flow)
        outs = []
        for level, blocks in enumerate(self.levels):
            if level:
                x = self.downsamples[level - 1](x)
            x = blocks(x)
            outs.append(x)
        return outs

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.features(batch[self.stream])[-1])  # (B, num_classes)


@dataclass(frozen=True, kw_only=True)
class AHMSANetFeatures(Settings):
    """The ``features`` section: ``stream`` names the extractor of the one ``flow`` input, whose
    parameters are its own section here (regions, whole face from clips, a release's map as is);
    ``align`` goes to the extractors that read clip frames."""

    section = "features"

    stream: Literal["roi_flow", "flow_uvs", "release_flow"]
    align: Literal["auto", "dlib", "none"]
    roi_flow: Mapping[str, Any]
    flow_uvs: Mapping[str, Any]
    release_flow: Mapping[str, Any]

    def request(self) -> FeatureRequest:
        """The ``flow`` stream's request: the chosen extractor with its section's parameters."""
        params = dict(getattr(self, self.stream))
        if self.stream == "flow_uvs" or self.stream == "roi_flow" and params.get("source", "clips") == "clips":
            params.setdefault("align", self.align)
        return FeatureRequest(self.stream, params)


@dataclass(frozen=True, kw_only=True)
class AHMSANetSettings(Settings):
    """AHMSA-Net's sections of a resolved config (the method's ``config_class``), each typed: its
    input stream, its network and its one supervised stage. The core checks them before any work."""

    section = ""  # the top level: each field is a section

    features: AHMSANetFeatures
    model: AHMSANetConfig
    train: SupervisedTrainer

    def __post_init__(self) -> None:
        size = self.features.request().params.get("size")
        if size is not None and int(size) != self.model.image_size:
            raise ValueError(f"features.{self.features.stream}.size {size} differs from model.image_size "
                             f"{self.model.image_size}")


def build_model(cfg: Mapping[str, Any] | AHMSANetConfig, num_classes: int) -> AHMSANet:
    """The model of a ``model`` config section."""
    config = cfg if isinstance(cfg, AHMSANetConfig) else AHMSANetConfig.from_config(cfg)
    return AHMSANet(config, num_classes)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__: Sequence[str] = ("AHMSANet", "AHMSANetConfig", "AHMSANetFeatures", "AHMSANetSettings", "AdaptiveDownsampling", "ChannelLayerNorm", "FeedForward",
                          "Level", "MultiScaleAttentionBlock", "PatchSpatialAttention", "build_model",
                          "count_parameters")
