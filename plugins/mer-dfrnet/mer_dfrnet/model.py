"""DFR-Net (DynamicFusionResNet; Li, Huang & Wu, CMC 2025), read top to bottom.

    apex  (spatial)      --shallow 3x3 conv+ReLU--> Fs --+
                                                          +-- concat -> 2x (conv+ReLU) -> Ffused   (eq. 9)
    |apex-onset| (diff)  --shallow 3x3 conv+ReLU--> Fd --+
    flow u,v,strain (temporal) --shallow 3x3 conv+ReLU--> Ft
    A = act(conv(ReLU(conv([GAP(Ffused), GAP(Ft)]))))   Ffinal = Ffused * A           (eq. 10)
    Ffinal -> ResNet stem -> 3 residual layers of BasicBlocks with CA then SA before the
    residual addition (eq. 12) -> global average pool -> linear -> logits

The design choices the paper leaves open are listed in ``docs/methods/dfrnet.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Mapping, Sequence

import torch
from torch import nn

from mercore import Encoder, Fusion, PositiveInt, Probability, Settings, Between
from mercore.nn.attention import ChannelAttention, SpatialAttention
from mercore.nn.init import init_resnet_style

BRANCHES = ("spatial", "temporal", "differential")
#: the input stream (batch key) each branch reads
STREAM_OF = {"spatial": "apex", "temporal": "flow", "differential": "diff"}
STAGE_WIDTHS = (64, 128, 256, 512)  # ResNet-18's four stages


@dataclass(kw_only=True)
class DFRNetConfig(Settings):
    """The ``model`` section of the method's config.

    Args:
        branches: which of spatial / temporal / differential are used (2 or 3 of them).
        fusion: ``attention`` (the paper's strategy), or ``add`` / ``multiply`` / ``concat`` of
            the three shallow maps (Table 4).
        block_attention: attention inside each BasicBlock: ``none`` / ``ca`` / ``sa`` / ``casa``.
        layers: number of residual layers (1-4, Table 8); widths 64, 128, 256, 512.
        blocks_per_layer: BasicBlocks per layer (2, as ResNet-18).
        shallow_channels: width of each branch's shallow layer and of the fused map.
        in_channels: channels of each branch's input.
        reduction, sa_kernel, ca_merge: CBAM settings (see ``mercore.nn.attention``).
        fusion_gate: last activation of the attention-weight network, ``relu`` (as eq. 10's text
            says) or ``sigmoid``.
        stem: ``resnet`` (7x7 stride-2 conv + BN + ReLU + 3x3 stride-2 max-pool, as the standard
            ResNet) or ``none`` (the layers run at full resolution).
        dropout: before the linear head (0: none, as the paper).
    """

    section = "model"

    branches: tuple[Literal["spatial", "temporal", "differential"], ...]
    fusion: Literal["attention", "add", "multiply", "concat"]
    block_attention: Literal["none", "ca", "sa", "casa"]
    layers: Annotated[int, Between(1, 4)]
    blocks_per_layer: PositiveInt
    shallow_channels: PositiveInt
    in_channels: Mapping[str, PositiveInt]
    reduction: PositiveInt
    sa_kernel: PositiveInt
    ca_merge: Literal["after_mlp", "before_mlp"]
    fusion_gate: Literal["relu", "sigmoid"]
    stem: Literal["resnet", "none"]
    dropout: Probability

    def __post_init__(self) -> None:
        if len(set(self.branches)) not in (2, 3) or len(set(self.branches)) != len(self.branches):
            raise ValueError(f"model.branches must be 2 or 3 distinct names of {list(BRANCHES)}, got {list(self.branches)}")
        self.branches = tuple(b for b in BRANCHES if b in self.branches)  # canonical order
        if set(self.in_channels) != set(BRANCHES):
            raise ValueError(f"model.in_channels must give the channels of {list(BRANCHES)}, got {dict(self.in_channels)}")



# --- 1. shallow feature extraction, one per branch ------------------------------------------

class ShallowBranch(Encoder):
    """3x3 conv, stride 1, + ReLU: low-level edges and textures of one input map."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.out_features = channels
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))  # (B, C0, H, W)


# --- 2. multi-feature fusion -------------------------------------------------------------------

def _conv_relu_pair(in_channels: int, channels: int) -> nn.Sequential:
    """sigma(f2(sigma(f1(x)))) with 3x3 convolutions (eq. 9)."""
    return nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))


class AttentionFusion(Fusion):
    """The paper's fusion: spatial and differential maps concatenated and fused (eq. 9), then
    re-weighted channel-wise by attention weights computed from the globally pooled fused map
    and temporal map (eq. 10).

    Without the temporal branch the re-weighting step is omitted; with only one of spatial /
    differential, the two fusion convolutions run on that map alone (the concatenation step is
    omitted), as the paper's Table 3 says: "if a feature was excluded, the corresponding fusion
    step was omitted".
    """

    def __init__(self, branches: Sequence[str], channels: int, gate: str = "relu") -> None:
        super().__init__()
        self.static = [b for b in ("spatial", "differential") if b in branches]
        self.use_temporal = "temporal" in branches
        self.fuse = _conv_relu_pair(channels * len(self.static), channels)
        if self.use_temporal:
            # two 1x1 convolutions on the pooled descriptors (on a 1x1 map a 3x3 conv with padding
            # reduces to its centre tap, so 1x1 is the same function with fewer dead weights)
            self.weigh = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), nn.ReLU(inplace=True),
                                       nn.Conv2d(channels, channels, 1),
                                       nn.ReLU() if gate == "relu" else nn.Sigmoid())
        self.out_channels = channels

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        fused = self.fuse(torch.cat([feats[b] for b in self.static], dim=1))  # (B, C0, H, W)
        if not self.use_temporal:
            return fused
        pooled = torch.cat([fused.mean(dim=(2, 3), keepdim=True),              # (B, C0, 1, 1)
                            feats["temporal"].mean(dim=(2, 3), keepdim=True)], dim=1)  # (B, 2 C0, 1, 1)
        weights = self.weigh(pooled)  # (B, C0, 1, 1)
        return fused * weights  # (B, C0, H, W)


class ElementwiseFusion(Fusion):
    """Table 4's conventional fusions: the shallow maps (same shape) added, multiplied or
    concatenated, then the same two conv + ReLU fusion layers as eq. 9."""

    def __init__(self, branches: Sequence[str], channels: int, mode: str) -> None:
        super().__init__()
        self.branches, self.mode = tuple(branches), mode
        in_channels = channels * len(self.branches) if mode == "concat" else channels
        self.fuse = _conv_relu_pair(in_channels, channels)
        self.out_channels = channels

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        maps = [feats[b] for b in self.branches]  # each (B, C0, H, W)
        if self.mode == "concat":
            x = torch.cat(maps, dim=1)  # (B, n C0, H, W)
        elif self.mode == "add":
            x = torch.stack(maps).sum(0)  # (B, C0, H, W)
        else:
            x = torch.stack(maps).prod(0)  # (B, C0, H, W)
        return self.fuse(x)  # (B, C0, H, W)


# --- 3. channel-spatial attention ResNet --------------------------------------------------------

class BasicBlock(nn.Module):
    """ResNet BasicBlock with CA then SA on the residual branch before the addition (eq. 12):
    ``out = ReLU(x' + SA(CA(BN(conv(ReLU(BN(conv(x))))))))``, x' the (projected) shortcut."""

    def __init__(self, in_channels: int, channels: int, stride: int, attention: str, reduction: int,
                 sa_kernel: int, ca_merge: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.ca = ChannelAttention(channels, reduction, merge=ca_merge) if attention in ("ca", "casa") else nn.Identity()
        self.sa = SpatialAttention(sa_kernel) if attention in ("sa", "casa") else nn.Identity()
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))  # (B, C, H', W')
        out = self.bn2(self.conv2(out))  # (B, C, H', W')
        out = self.sa(self.ca(out))  # (B, C, H', W')
        return torch.relu(out + self.shortcut(x))  # (B, C, H', W')


class AttentionResNet(Encoder):
    """ResNet stem + ``layers`` residual layers (64/128/256/512 channels, stride 1 then 2) +
    global average pool: (B, C0, H, W) -> (B, out_features)."""

    def __init__(self, in_channels: int, cfg: DFRNetConfig) -> None:
        super().__init__()
        width = STAGE_WIDTHS[0]
        if cfg.stem == "resnet":
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, stride=2, padding=1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        stages, c_in = [], width
        for i in range(int(cfg.layers)):
            c_out = STAGE_WIDTHS[i]
            blocks = [BasicBlock(c_in if j == 0 else c_out, c_out, (1 if i == 0 else 2) if j == 0 else 1,
                                 cfg.block_attention, cfg.reduction, cfg.sa_kernel, cfg.ca_merge)
                      for j in range(int(cfg.blocks_per_layer))]
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.layers = nn.Sequential(*stages)
        self.out_features = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 64, H/4, W/4)
        x = self.layers(x)  # (B, C_last, H/2^(1+layers), W/2^(1+layers))
        return x.mean(dim=(2, 3))  # (B, C_last)


# --- 4. the whole network ---------------------------------------------------------------------

class DFRNetModel(nn.Module):
    """forward(batch) -> logits (B, num_classes); the batch holds ``apex`` / ``flow`` / ``diff``
    (B, 3, H, W) for the branches in use."""

    def __init__(self, cfg: DFRNetConfig, num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        c0 = int(cfg.shallow_channels)
        self.branches = nn.ModuleDict({b: ShallowBranch(int(cfg.in_channels[b]), c0) for b in cfg.branches})
        if cfg.fusion == "attention":
            self.fusion: Fusion = AttentionFusion(cfg.branches, c0, cfg.fusion_gate)
        else:
            self.fusion = ElementwiseFusion(cfg.branches, c0, cfg.fusion)
        self.backbone = AttentionResNet(c0, cfg)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout else nn.Identity()
        self.head = nn.Linear(self.backbone.out_features, num_classes)
        init_resnet_style(self)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feats = {b: enc(batch[STREAM_OF[b]]) for b, enc in self.branches.items()}  # each (B, C0, H, W)
        fused = self.fusion(feats)  # (B, C0, H, W)
        pooled = self.backbone(fused)  # (B, C_last)
        return self.head(self.dropout(pooled))  # (B, num_classes)


def build_model(model_cfg: Mapping[str, object] | DFRNetConfig, num_classes: int) -> DFRNetModel:
    """A DFR-Net from the ``model`` config section."""
    cfg = model_cfg if isinstance(model_cfg, DFRNetConfig) else DFRNetConfig.from_config(model_cfg)
    return DFRNetModel(cfg, num_classes)
