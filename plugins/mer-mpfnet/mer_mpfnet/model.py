"""MPFNet networks: the CA-I3D encoder, and the two variants built from a GFE and an AFE.

CA-I3D (paper Sec. 3.3.1, Fig. 5), as built here::

    x (B, 5, T, H, W)                         optical flow (u, v) + frame difference (RGB), T = length - 1
    -> Unit3D 3x3x3, stem channels            (I3D's 7x7x7/2 stem and its first max-pool removed)
    -> MaxPool 1x3x3, stride (1, 2, 2)        (B, C0, T, H/2, W/2)
    -> Inception-v1 3D (Mixed_3b widths) + CA (B, 256w, T, H/2, W/2)
    -> MaxPool 1x3x3, stride (1, 2, 2)        (B, 256w, T, H/4, W/4)
    -> Inception-v1 3D (Mixed_3c widths) + CA (B, 480w, T, H/4, W/4)
    -> [optional adaptive avg pool to ``head_grid``]  (no global average pool)
    -> flatten -> Linear [-> BatchNorm1d] -> embedding (B, D)

MPFNet-P: ``d = cos(GFE(x), c_G) + gamma * cos(AFE(x), c_A)``.
MPFNet-C: ``AFE(concat(x, r(GFE_map(x))))`` where ``GFE_map`` is the GFE's last Inception
output, ``r`` a 1x1x1 conv to ``cascade_channels`` maps upsampled (trilinear) to the input's
(T, H, W): the residual concatenation of the input with the GFE's features; ``d = cos(z_A, c)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

import torch
from torch import nn

from mercore.nn.coordinate_attention import CoordinateAttention3D
from mercore import (NonNegativeFloat, PositiveFloat, PositiveInt, Probability, PrototypeClassifier, Settings,
                     runtime)

# I3D (Carreira & Zisserman 2017) Inception widths: [1x1, 3x3 reduce, 3x3, 3x3' reduce, 3x3', pool proj]
MIXED_3B = (64, 96, 128, 16, 32, 32)     # -> 256
MIXED_3C = (128, 128, 192, 32, 96, 64)   # -> 480
STREAMS = ("flow", "diff")
IN_CHANNELS = 5  # u, v of the flow + the RGB frame difference, stacked along channels


class Unit3D(nn.Sequential):
    """Conv3d ('same' padding) + BatchNorm + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: Sequence[int] = (1, 1, 1)) -> None:
        pad = tuple(k // 2 for k in kernel)
        super().__init__(nn.Conv3d(cin, cout, tuple(kernel), padding=pad, bias=False), nn.BatchNorm3d(cout),
                         nn.ReLU(inplace=True))


class CAInception3D(nn.Module):
    """Inception-v1 inflated to 3D, with Coordinate Attention after the concatenation.

    Shape:
        - Input: (B, C_in, T, H, W)
        - Output: (B, b0 + b1b + b2b + b3, T, H, W)
    """

    def __init__(self, cin: int, widths: Sequence[int], ca_reduction: int = 32, ca_mode: str = "thw") -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.b0 = Unit3D(cin, b0)
        self.b1 = nn.Sequential(Unit3D(cin, b1a), Unit3D(b1a, b1b, (3, 3, 3)))
        self.b2 = nn.Sequential(Unit3D(cin, b2a), Unit3D(b2a, b2b, (3, 3, 3)))
        self.b3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), Unit3D(cin, b3))
        self.out_channels = b0 + b1b + b2b + b3
        self.ca = CoordinateAttention3D(self.out_channels, ca_reduction, mode=ca_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ca(torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], dim=1))


def scaled(widths: Sequence[int], mult: float) -> tuple[int, ...]:
    return tuple(max(4, int(round(w * mult))) for w in widths)


@dataclass(kw_only=True)
class EncoderConfig:
    """CA-I3D hyperparameters: one encoder's share of :class:`MPFNetConfig` and its input shape."""

    in_channels: int
    length: int                 # T of the input (frames - 1)
    size: int                   # H = W of the input
    stem_channels: int
    width: float                # multiplier on I3D's Mixed_3b / Mixed_3c widths
    embedding_dim: int
    head_grid: Sequence[int] | None  # adaptive avg pool before the linear layer; None: flatten all
    ca_reduction: int
    ca_mode: str
    dropout: float
    embedding_bn: bool          # BatchNorm1d on the embedding (centres it for the cosine metric)


@dataclass(kw_only=True)
class MPFNetConfig(Settings):
    """The ``model`` section of config.yaml, plus the input's ``size`` and ``length`` (set from
    ``features``: frames - 1 flow / difference steps)."""

    section = "model"

    variant: Literal["c", "p"]
    stem_channels: PositiveInt
    width: PositiveFloat
    embedding_dim: PositiveInt
    head_grid: tuple[PositiveInt, ...] | None
    ca_reduction: PositiveInt
    ca_mode: Literal["thw", "frame"]
    dropout: Probability
    embedding_bn: bool
    cascade_channels: PositiveInt
    gamma: NonNegativeFloat
    scale: PositiveFloat
    size: int = runtime(128)
    length: int = runtime(10)

    def __post_init__(self) -> None:
        if self.head_grid is not None and len(self.head_grid) != 3:
            raise ValueError(f"model.head_grid needs three sizes (time, height, width) or null, got {list(self.head_grid)}")

    def encoder(self, in_channels: int) -> EncoderConfig:
        """The CA-I3D of a stream stack with ``in_channels`` channels."""
        return EncoderConfig(in_channels=in_channels, length=self.length, size=self.size,
                             stem_channels=self.stem_channels, width=self.width, embedding_dim=self.embedding_dim,
                             head_grid=self.head_grid, ca_reduction=self.ca_reduction, ca_mode=self.ca_mode,
                             dropout=self.dropout, embedding_bn=self.embedding_bn)


class CAI3D(nn.Module):
    """The CA-I3D encoder. ``forward`` -> (B, D); ``features`` -> last Inception map.

    Shape:
        - Input: (B, in_channels, T, H, W)
        - Output: (B, embedding_dim)
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        stem = max(4, int(round(cfg.stem_channels * cfg.width)))
        self.stem = Unit3D(cfg.in_channels, stem, (3, 3, 3))
        self.pool1 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.mixed_a = CAInception3D(stem, scaled(MIXED_3B, cfg.width), cfg.ca_reduction, cfg.ca_mode)
        self.pool2 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.mixed_b = CAInception3D(self.mixed_a.out_channels, scaled(MIXED_3C, cfg.width), cfg.ca_reduction,
                                     cfg.ca_mode)
        self.feature_channels = self.mixed_b.out_channels
        t, h = cfg.length, cfg.size
        h4 = (((h + 1) // 2) + 1) // 2
        if cfg.head_grid is not None:
            grid = tuple(int(g) for g in cfg.head_grid)
            self.head_pool: nn.Module = nn.AdaptiveAvgPool3d(grid)
            flat = self.feature_channels * grid[0] * grid[1] * grid[2]
        else:
            self.head_pool = nn.Identity()
            flat = self.feature_channels * t * h4 * h4
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(flat, cfg.embedding_dim)
        self.bn = nn.BatchNorm1d(cfg.embedding_dim) if cfg.embedding_bn else nn.Identity()
        self.out_features = cfg.embedding_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T, H, W) -> last CA-Inception map (B, C_feat, T, H/4, W/4)."""
        if x.dim() != 5 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(f"CA-I3D expects (B, {self.cfg.in_channels}, T, H, W), got {tuple(x.shape)}")
        # Channels-last: oneDNN's 3D convolutions with few channels run 1.2-1.4x faster on CPU in
        # this layout (benchmarks/memory_layout.md); the values agree up to float rounding.
        x = self.pool1(self.stem(x.contiguous(memory_format=torch.channels_last_3d)))
        return self.mixed_b(self.pool2(self.mixed_a(x)))

    def embed_map(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(self.dropout(torch.flatten(self.head_pool(fmap), 1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_map(self.features(x))


class MPFNetModel(nn.Module):
    """GFE + AFE (+ cascade link for ``c``) + prototype classifier.

    ``forward(batch)`` -> logits (B, num_classes): scaled cosine similarities to the class
    centroids set by the meta-learning stage (all zeros before). ``embed(batch)`` gives the
    embeddings the centroids live in: ``(z_G, z_A)`` for ``p``, ``(z_A,)`` for ``c``.
    """

    def __init__(self, cfg: MPFNetConfig, num_classes: int) -> None:
        super().__init__()
        self.variant = variant = cfg.variant
        self.streams = STREAMS
        self.gfe = CAI3D(cfg.encoder(IN_CHANNELS))
        self.cascade_channels = cfg.cascade_channels if variant == "c" else 0
        if variant == "c":
            self.cascade = nn.Sequential(nn.Conv3d(self.gfe.feature_channels, self.cascade_channels, 1, bias=False),
                                         nn.BatchNorm3d(self.cascade_channels), nn.ReLU(inplace=True))
        self.afe = CAI3D(cfg.encoder(IN_CHANNELS + self.cascade_channels))
        d = self.gfe.out_features
        weights = [1.0, cfg.gamma] if variant == "p" else [1.0]
        self.prototypes = PrototypeClassifier(num_classes, [d] * len(weights), weights, cfg.scale)
        self.afe_head = nn.Linear(self.afe.out_features, num_classes)  # AFE pre-training only
        self.num_classes = num_classes

    def stack(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate the input streams along channels: (B, 2 + 3, T, H, W)."""
        return torch.cat([batch[s] for s in self.streams], dim=1)

    def gfe_embed(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.gfe(self.stack(batch))

    def afe_input(self, x: torch.Tensor, gfe_map: torch.Tensor | None = None) -> torch.Tensor:
        """The AFE's input: ``x`` (p) or ``concat(x, upsampled GFE map)`` (c)."""
        if self.variant == "p":
            return x
        g = self.cascade(self.gfe.features(x) if gfe_map is None else gfe_map)  # (B, c, T, H/4, W/4)
        g = nn.functional.interpolate(g, size=x.shape[2:], mode="trilinear", align_corners=False)
        return torch.cat([x, g], dim=1)                                          # (B, 5 + c, T, H, W)

    def embed(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        x = self.stack(batch)
        if self.variant == "p":
            return self.gfe(x), self.afe(x)
        return (self.afe(self.afe_input(x)),)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.prototypes(self.embed(batch))


class AFEClassifier(nn.Module):
    """The AFE sub-network with its classification head, for supervised pre-training.

    In the cascade variant the (already trained) GFE stays frozen and in eval mode; the
    cascade link, the AFE and the head are trained.
    """

    def __init__(self, model: MPFNetModel) -> None:
        super().__init__()
        self.model = model

    def trainable(self) -> list[nn.Parameter]:
        m = self.model
        mods = [m.afe, m.afe_head] + ([m.cascade] if m.variant == "c" else [])
        return [p for mod in mods for p in mod.parameters()]

    def train(self, mode: bool = True) -> "AFEClassifier":
        super().train(mode)
        self.model.gfe.eval()
        return self

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        m = self.model
        x = m.stack(batch)
        gfe_map = None
        if m.variant == "c":
            with torch.no_grad():  # the GFE is frozen here
                gfe_map = m.gfe.features(x)
        return m.afe_head(m.afe(m.afe_input(x, gfe_map)))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
