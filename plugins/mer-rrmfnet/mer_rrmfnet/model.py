"""RRMFNet (Zhao et al., Cognitive Computation), reconstructed from its experiments section.

One branch per input stream (TV-L1 flow and apex frame, Table 4), then a fusion head:

    stream (B, 3, S, S) --IncepResizer--> (B, 3, R, R)                  learnable resizer (Tables 6, 12)
        --ResNet-style backbone--> C3 (R/8), C4 (R/16), C5 (R/32)       "lightweight backbone"
        --EuRepGFPN--> P3, P4, P5                                       RepGFPN neck + EUCB up-sampling (Table 7)
        --AAB--> (B, C_a, R/16, R/16)                                   aggregation of P3-P5 + CBAM (Table 8)
    concat over streams --FusionBlock (n BasicBlocks)--> (B, C_f, R/16, R/16)      (Table 11)
        --dimensionality reduction (conv k/s/p + adaptive avg-pool HxW)-->        (Tables 9, 10)
        --flatten--> MLP --> logits

Every choice the paper leaves open is listed with its reason in ``docs/methods/rrmfnet.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from mercore import (AtLeast, DeclaredFeatures, Encoder, Fusion, NonNegativeInt, PositiveFloat, PositiveInt,
                     Probability, Settings, SupervisedTrainer)
from mercore.nn.attention import CBAM
from mercore.nn.init import init_resnet_style
from mercore.nn.rep import RepConv, reparameterize

STREAMS = ("flow", "apex")

#: Table 5's ablation models as config switches (the table itself did not survive extraction;
#: the prose of Tables 6-8 says what each model adds, see the method doc)
TABLE5_MODELS: dict[str, dict[str, object]] = {
    "A": {"resizer": "bilinear", "neck": "repgfpn", "cbam": False},
    "B": {"resizer": "residual", "neck": "repgfpn", "cbam": False},
    "C": {"resizer": "inception", "neck": "repgfpn", "cbam": False},
    "D": {"resizer": "inception", "neck": "eurepgfpn", "cbam": False},
    "E": {"resizer": "inception", "neck": "eurepgfpn", "cbam": True, "cbam_kernel": 3},
    "F": {"resizer": "inception", "neck": "eurepgfpn", "cbam": True, "cbam_kernel": 7},
}


@dataclass(kw_only=True)
class RRMFNetConfig(Settings):
    """The ``model`` section of the method's config.

    Args:
        streams: input streams used (Table 4: ``[flow]``, ``[apex]`` or both).
        in_channels: channels of each stream.
        resize_to: R, the side of the resizer's output (the backbone's input).
        resizer: ``bilinear`` (Model A), ``residual`` (Talebi & Milanfar's resizer, Model B) or
            ``inception`` (IncepResizer, Model C on).
        resizer_filters, resizer_blocks: width of the resizer's conv path and n of its
            (IncepRes)blocks (Table 12: n = 2).
        backbone_widths, backbone_blocks: the four stages of the ResNet-style backbone.
        neck: ``repgfpn`` (nearest up-sampling) or ``eurepgfpn`` (EUCB up-sampling, Model D on).
        neck_channels: channels of the neck's P3, P4, P5 (inputs are projected to them).
        neck_depth, neck_hidden_ratio: RepBlocks per CSP fusion node and their hidden width.
        aab_channels: width of the AAB output.
        cbam, cbam_kernel, cbam_reduction: CBAM in the AAB (Table 8: k = 7).
        fusion_channels, fusion_blocks: FusionBlock width and BasicBlock repeats (Table 11: n = 3).
        reduce_kernel, reduce_stride, reduce_padding, reduce_channels: the reduction conv
            (``reduce_kernel: null`` skips it, Table 9's "-").
        reduce_pool: adaptive average-pool target [H, W] (null skips it).
        mlp_hidden, dropout: the MLP classifier.
        width: multiplier on every channel width above (1.0 = the paper-sized model).
    """

    section = "model"

    streams: tuple[Literal["flow", "apex"], ...]
    in_channels: Mapping[str, PositiveInt]
    resize_to: Annotated[int, AtLeast(32)]  # the backbone reduces by 32
    resizer: Literal["bilinear", "residual", "inception"]
    resizer_filters: PositiveInt
    resizer_blocks: PositiveInt
    backbone_widths: tuple[PositiveInt, ...]
    backbone_blocks: tuple[PositiveInt, ...]
    neck: Literal["repgfpn", "eurepgfpn"]
    neck_channels: tuple[PositiveInt, ...]
    neck_depth: PositiveInt
    neck_hidden_ratio: PositiveFloat
    aab_channels: PositiveInt
    cbam: bool
    cbam_kernel: PositiveInt
    cbam_reduction: PositiveInt
    fusion_channels: PositiveInt
    fusion_blocks: PositiveInt
    reduce_kernel: PositiveInt | None
    reduce_stride: PositiveInt
    reduce_padding: NonNegativeInt
    reduce_channels: PositiveInt
    reduce_pool: tuple[PositiveInt, ...] | None
    mlp_hidden: PositiveInt
    dropout: Probability
    width: PositiveFloat

    def __post_init__(self) -> None:
        if not self.streams or len(set(self.streams)) != len(self.streams):
            raise ValueError(f"model.streams must be distinct names of {list(STREAMS)}, got {list(self.streams)}")
        self.streams = tuple(s for s in STREAMS if s in self.streams)  # canonical order
        if set(self.in_channels) != set(STREAMS):
            raise ValueError(f"model.in_channels must give the channels of {list(STREAMS)}, got {dict(self.in_channels)}")
        if len(self.backbone_widths) != 4 or len(self.backbone_blocks) != 4 or len(self.neck_channels) != 3:
            raise ValueError("model.backbone_widths/backbone_blocks need 4 entries and model.neck_channels 3")
        if self.reduce_pool is not None and len(self.reduce_pool) != 2:
            raise ValueError(f"model.reduce_pool must be [H, W] or null, got {list(self.reduce_pool)}")

    def ch(self, c: int) -> int:
        """A channel width scaled by ``width`` (at least 8, a multiple of 8 above that)."""
        return max(8, int(round(c * self.width / 8)) * 8)



class ConvBNAct(nn.Sequential):
    """k x k conv ("same" padding) + BN + activation (ReLU unless given)."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1,
                 act: nn.Module | None = None) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out),
                         act if act is not None else nn.ReLU(inplace=True))


# --- 1. IncepResizer (Talebi & Milanfar, ICCV 2021, with Inception-v2 residual blocks) -----------------

def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)  # the resizer's activation (Talebi & Milanfar)


class ResizerResBlock(nn.Module):
    """Talebi & Milanfar's residual block: conv3x3-BN-LeakyReLU-conv3x3-BN + skip (Model B)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(c, c, 3, act=_lrelu()), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)  # (B, c, R, R)


class IncepResBlock(nn.Module):
    """Inception-v2 style residual block: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 (the 5x5 factorised into two
    3x3, BN after every conv), concatenated, projected back by a linear 1x1, added to the input."""

    def __init__(self, c: int) -> None:
        super().__init__()
        h = max(4, c // 2)
        self.b1 = ConvBNAct(c, h, 1, act=_lrelu())
        self.b3 = nn.Sequential(ConvBNAct(c, h, 1, act=_lrelu()), ConvBNAct(h, h, 3, act=_lrelu()))
        self.b5 = nn.Sequential(ConvBNAct(c, h, 1, act=_lrelu()), ConvBNAct(h, h, 3, act=_lrelu()),
                                ConvBNAct(h, h, 3, act=_lrelu()))
        self.project = nn.Sequential(nn.Conv2d(3 * h, c, 1, bias=False), nn.BatchNorm2d(c))
        self.act = _lrelu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.b1(x), self.b3(x), self.b5(x)], dim=1)  # (B, 3h, R, R)
        return self.act(x + self.project(y))  # (B, c, R, R)


class LearnableResizer(nn.Module):
    """``bilinear(x) + conv_path(x)``: the conv path is 7x7 conv - LReLU - 1x1 conv - LReLU - BN,
    bilinear resize, ``blocks`` residual blocks, 3x3 conv - BN plus the resized features, and a
    7x7 conv back to the input channels (Talebi & Milanfar, Fig. 2)."""

    def __init__(self, channels: int, size: int, filters: int = 16, blocks: int = 2, block: str = "inception") -> None:
        super().__init__()
        self.size = int(size)
        self.head = nn.Sequential(nn.Conv2d(channels, filters, 7, padding=3), _lrelu(),
                                  nn.Conv2d(filters, filters, 1), _lrelu(), nn.BatchNorm2d(filters))
        make = IncepResBlock if block == "inception" else ResizerResBlock
        self.blocks = nn.Sequential(*[make(filters) for _ in range(int(blocks))])
        self.merge = nn.Sequential(nn.Conv2d(filters, filters, 3, padding=1, bias=False), nn.BatchNorm2d(filters))
        self.tail = nn.Conv2d(filters, channels, 7, padding=3)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self._resize(x)  # (B, C, R, R)
        y = self._resize(self.head(x))  # (B, f, R, R)
        y = self.merge(self.blocks(y)) + y  # (B, f, R, R)
        return skip + self.tail(y)  # (B, C, R, R)


class BilinearResize(nn.Module):
    """Model A: plain bilinear interpolation to R x R."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)  # (B, C, R, R)


# --- 2. backbone -------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """ResNet BasicBlock (He et al. 2016): two 3x3 conv + BN, projected shortcut when needed."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(c_in, c_out, 3, stride),
                                  nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))  # (B, c_out, H / stride, W / stride)


class Backbone(nn.Module):
    """ResNet-style: 7x7/2 stem + 3x3/2 max-pool, four stages of BasicBlocks (strides 1, 2, 2, 2);
    returns the last three stages (strides 8, 16, 32) as the neck's C3, C4, C5."""

    def __init__(self, in_channels: int, widths: Sequence[int], blocks: Sequence[int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBNAct(in_channels, widths[0], 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, c_in = [], widths[0]
        for i, (c, n) in enumerate(zip(widths, blocks)):
            stages.append(nn.Sequential(*[BasicBlock(c_in if j == 0 else c, c, (1 if i == 0 else 2) if j == 0 else 1)
                                          for j in range(int(n))]))
            c_in = c
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(widths[1:])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (B, w0, R/4, R/4)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs[1:]  # C3 (R/8), C4 (R/16), C5 (R/32)


# --- 3. (Eu)RepGFPN ------------------------------------------------------------------------------------

class RepBlock(nn.Module):
    """RepGFPN's basic block (DAMO-YOLO ``BasicBlock_3x3_Reverse``): RepConv 3x3 -> ConvBNAct 3x3
    + shortcut. The RepConv fuses to one 3x3 conv for inference (``mercore.nn.rep``)."""

    def __init__(self, c: int, hidden_ratio: float) -> None:
        super().__init__()
        h = max(8, int(c * hidden_ratio))
        self.rep = RepConv(c, h)
        self.conv = ConvBNAct(h, c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.rep(x))  # (B, c, H, W)


class CSPStage(nn.Module):
    """A RepGFPN fusion node: two 1x1 splits, ``n`` RepBlocks on one of them, every block's output
    and the other split concatenated (ELAN-style) and merged by a 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, n: int, hidden_ratio: float) -> None:
        super().__init__()
        first, mid = c_out // 2, c_out - c_out // 2
        self.split1, self.split2 = ConvBNAct(c_in, first), ConvBNAct(c_in, mid)
        self.blocks = nn.ModuleList([RepBlock(mid, hidden_ratio) for _ in range(int(n))])
        self.merge = ConvBNAct(first + mid * int(n), c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.split2(x)
        outs = [self.split1(x)]
        for block in self.blocks:
            y = block(y)
            outs.append(y)
        return self.merge(torch.cat(outs, dim=1))  # (B, c_out, H, W)


class NearestUp(nn.Module):
    """RepGFPN's up-sampling: nearest-neighbour to the size of the target level."""

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        return F.interpolate(x, size=tuple(size), mode="nearest")


class EUCB(nn.Module):
    """Efficient up-convolution block (EMCAD, Rahman et al. CVPR 2024): up-sample -> depth-wise
    3x3 conv -> BN -> ReLU -> point-wise 1x1 conv. (EMCAD's channel shuffle with one channel per
    group is the identity and is left out.)"""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.dw = ConvBNAct(c, c, 3, groups=c)
        self.pw = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        x = F.interpolate(x, size=tuple(size), mode="nearest")  # (B, c, 2H, 2W)
        return self.pw(self.dw(x))


class RepGFPN(nn.Module):
    """DAMO-YOLO's RepGFPN (GiraffeNeckV2) with queen-fusion: every node concatenates the same
    level, the up-sampled coarser node and the down-sampled (3x3/2 conv) finer node, then a
    CSPStage of RepBlocks. ``upsample="eucb"`` swaps the up-sampling for EUCBs (EuRepGFPN).

    Inputs C3, C4, C5 (strides 8, 16, 32) are first projected to ``channels`` by 1x1 convs.
    """

    def __init__(self, in_channels: Sequence[int], channels: Sequence[int], depth: int, hidden_ratio: float,
                 upsample: str = "eucb") -> None:
        super().__init__()
        c3, c4, c5 = channels
        self.lateral = nn.ModuleList([ConvBNAct(ci, co) for ci, co in zip(in_channels, channels)])
        up = (lambda c: EUCB(c)) if upsample == "eucb" else (lambda c: NearestUp())

        def node(c_in: int, c_out: int) -> CSPStage:
            return CSPStage(c_in, c_out, depth, hidden_ratio)

        self.down_4to5 = ConvBNAct(c4, c4, 3, 2)
        self.node5 = node(c5 + c4, c5)  # top node x3: C5 + down(C4)
        self.up_5to4 = up(c5)
        self.down_3to4 = ConvBNAct(c3, c3, 3, 2)
        self.node4 = node(c3 + c4 + c5, c4)  # x4: C4 + down(C3) + up(x3)
        self.up_4to3 = up(c4)
        self.node3 = node(c3 + c4, c3)  # x5 = P3 out: C3 + up(x4)
        self.down_p3 = ConvBNAct(c3, c3, 3, 2)
        self.node4_out = node(c4 + c3, c4)  # x7 = P4 out: x4 + down(P3)
        self.down_x4 = ConvBNAct(c4, c4, 3, 2)
        self.down_p4 = ConvBNAct(c4, c4, 3, 2)
        self.node5_out = node(c5 + c4 + c4, c5)  # x6 = P5 out: x3 + down(x4) + down(P4)
        self.out_channels = (c3, c4, c5)

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3, c4, c5 = (lat(f) for lat, f in zip(self.lateral, feats))  # strides 8, 16, 32
        x3 = self.node5(torch.cat([c5, self.down_4to5(c4)], 1))  # (B, c5, R/32)
        x4 = self.node4(torch.cat([c4, self.down_3to4(c3), self.up_5to4(x3, c4.shape[-2:])], 1))  # (B, c4, R/16)
        p3 = self.node3(torch.cat([c3, self.up_4to3(x4, c3.shape[-2:])], 1))  # (B, c3, R/8)
        p4 = self.node4_out(torch.cat([x4, self.down_p3(p3)], 1))  # (B, c4, R/16)
        p5 = self.node5_out(torch.cat([x3, self.down_x4(x4), self.down_p4(p4)], 1))  # (B, c5, R/32)
        return p3, p4, p5


# --- 4. AAB -----------------------------------------------------------------------------------------

class AAB(nn.Module):
    """Attention aggregation block: P3 (3x3/2 conv), P4 (1x1 conv) and P5 (1x1 conv, nearest
    up-sampling) brought to the P4 grid, concatenated, merged by a 1x1 conv, then CBAM (optional,
    Table 8 ablates it and its kernel size)."""

    def __init__(self, in_channels: Sequence[int], channels: int, cbam: bool, kernel: int, reduction: int) -> None:
        super().__init__()
        c3, c4, c5 = in_channels
        self.from3 = ConvBNAct(c3, channels, 3, 2)  # P3 -> P4 grid
        self.from4, self.from5 = ConvBNAct(c4, channels), ConvBNAct(c5, channels)
        self.merge = ConvBNAct(3 * channels, channels)
        self.attention = CBAM(channels, reduction=reduction, kernel_size=kernel) if cbam else nn.Identity()
        self.out_channels = channels

    def forward(self, p3: torch.Tensor, p4: torch.Tensor, p5: torch.Tensor) -> torch.Tensor:
        size = p4.shape[-2:]
        up5 = F.interpolate(self.from5(p5), size=tuple(size), mode="nearest")
        x = torch.cat([self.from3(p3), self.from4(p4), up5], dim=1)  # (B, 3 C_a, R/16, R/16)
        return self.attention(self.merge(x))  # (B, C_a, R/16, R/16)


# --- 5. one stream ----------------------------------------------------------------------------------

class StreamBranch(Encoder):
    """Resizer -> backbone -> (Eu)RepGFPN -> AAB for one input stream."""

    def __init__(self, in_channels: int, cfg: RRMFNetConfig) -> None:
        super().__init__()
        ch = cfg.ch
        if cfg.resizer == "bilinear":
            self.resizer: nn.Module = BilinearResize(cfg.resize_to)
        else:
            self.resizer = LearnableResizer(in_channels, cfg.resize_to, cfg.resizer_filters, cfg.resizer_blocks,
                                            cfg.resizer)
        self.backbone = Backbone(in_channels, [ch(c) for c in cfg.backbone_widths], cfg.backbone_blocks)
        self.neck = RepGFPN(self.backbone.out_channels, [ch(c) for c in cfg.neck_channels], cfg.neck_depth,
                            cfg.neck_hidden_ratio, upsample="eucb" if cfg.neck == "eurepgfpn" else "nearest")
        self.aab = AAB(self.neck.out_channels, ch(cfg.aab_channels), cfg.cbam, cfg.cbam_kernel, cfg.cbam_reduction)
        self.out_features = self.aab.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resizer(x)  # (B, C, R, R)
        return self.aab(*self.neck(self.backbone(x)))  # (B, C_a, R/16, R/16)


# --- 6. fusion, reduction, classifier -------------------------------------------------------------------

class FusionBlock(Fusion):
    """Concatenated stream maps -> 1x1 ConvBNAct -> ``n`` BasicBlocks (Table 11: n = 3)."""

    def __init__(self, in_channels: int, channels: int, n: int) -> None:
        super().__init__()
        self.project = ConvBNAct(in_channels, channels)
        self.blocks = nn.Sequential(*[BasicBlock(channels, channels) for _ in range(int(n))])
        self.out_channels = channels

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.blocks(self.project(torch.cat(list(feats), dim=1)))  # (B, C_f, h, w)


class Reduction(nn.Sequential):
    """Dimensionality reduction before flattening (Table 9's k, s, p and H, W): a k x k conv with
    stride s and padding p (+ BN + ReLU) and/or an adaptive average pool to H x W."""

    def __init__(self, in_channels: int, cfg: RRMFNetConfig) -> None:
        layers: list[nn.Module] = []
        out_channels = in_channels
        if cfg.reduce_kernel is not None:
            out_channels = cfg.ch(cfg.reduce_channels)
            layers += [nn.Conv2d(in_channels, out_channels, int(cfg.reduce_kernel), int(cfg.reduce_stride),
                                 int(cfg.reduce_padding), bias=False),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
        if cfg.reduce_pool is not None:
            layers.append(nn.AdaptiveAvgPool2d(tuple(int(v) for v in cfg.reduce_pool)))
        super().__init__(*layers)
        self.out_channels = out_channels
        self.cfg = cfg

    def out_cells(self, side: int) -> int:
        """H x W of the output for a side x side input (so the MLP's input width is known)."""
        if self.cfg.reduce_pool is not None:
            return int(self.cfg.reduce_pool[0]) * int(self.cfg.reduce_pool[1])
        if self.cfg.reduce_kernel is not None:
            k, st, pad = int(self.cfg.reduce_kernel), int(self.cfg.reduce_stride), int(self.cfg.reduce_padding)
            side = (side + 2 * pad - k) // st + 1
        return side * side


def _grid(size: int, times: int) -> int:
    """Side after ``times`` stride-2 layers of the backbone (each maps n to ceil(n / 2))."""
    for _ in range(times):
        size = (size + 1) // 2
    return size


class RRMFNetModel(nn.Module):
    """forward(batch) -> logits (B, num_classes); the batch holds ``flow`` and/or ``apex`` (B, C, S, S)."""

    def __init__(self, cfg: RRMFNetConfig, num_classes: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.branches = nn.ModuleDict({s: StreamBranch(int(cfg.in_channels[s]), cfg) for s in cfg.streams})
        c_a = sum(b.out_features for b in self.branches.values())
        self.fusion = FusionBlock(c_a, cfg.ch(cfg.fusion_channels), cfg.fusion_blocks)
        self.reduce = Reduction(self.fusion.out_channels, cfg)
        flat = self.reduce.out_channels * self.reduce.out_cells(_grid(int(cfg.resize_to), 4))  # P4 grid side
        self.head = nn.Sequential(nn.Linear(flat, cfg.ch(cfg.mlp_hidden)), nn.ReLU(inplace=True),
                                  nn.Dropout(cfg.dropout), nn.Linear(cfg.ch(cfg.mlp_hidden), num_classes))
        init_resnet_style(self)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feats = [branch(batch[s]) for s, branch in self.branches.items()]  # each (B, C_a, R/16, R/16)
        x = self.reduce(self.fusion(feats))  # (B, C_r, H, W)
        return self.head(x.flatten(1))  # (B, num_classes)

    def reparameterize(self) -> "RRMFNetModel":
        """Fuse every RepConv of the necks into a single 3x3 conv (inference form), in place."""
        reparameterize(self)
        return self


@dataclass(frozen=True, kw_only=True)
class RRMFNetSettings(Settings):
    """RRMFNet's sections of a resolved config (the method's ``config_class``), each typed: its
    declared input streams, its network and its one supervised stage (with perturbation training
    in ``train.perturbation``). The core checks them before any work."""

    section = ""  # the top level: each field is a section

    features: DeclaredFeatures
    model: RRMFNetConfig
    train: SupervisedTrainer

    def __post_init__(self) -> None:
        missing = [s for s in self.model.streams if s not in self.features.streams]
        if missing:
            raise ValueError(f"model.streams names {missing}, which features.streams does not declare "
                             f"(it declares {sorted(self.features.streams)})")


def build_model(model_cfg: Mapping[str, object] | RRMFNetConfig, num_classes: int) -> RRMFNetModel:
    """An RRMFNet from the ``model`` config section."""
    cfg = model_cfg if isinstance(model_cfg, RRMFNetConfig) else RRMFNetConfig.from_config(model_cfg)
    return RRMFNetModel(cfg, num_classes)
