"""MoExt networks: feature separator, motion extractor, apex reconstruction, projection head.

Layout (Li et al. 2024, Figs. 2 and 4, Tables 1 and 2; the open choices are in
docs/methods/moext.md):

* feature separator F: a ResNet-18 trunk gives generic maps (512 x 7 x 7 at 224); a shape and a
  texture branch of identical structure (Conv blocks of Table 1, global average pooling, fully
  connected layers) turn them into d-dimensional vectors S and T (d = 512);
* motion extractor E: dS = |S_a - S_o|, M = C2(concat(C1(dS), S_a)) with Table 1 Conv blocks on
  the vectors viewed as d x 1 x 1 maps;
* reconstruction R (Table 2): concat(M, T_o) = 2d x 1 x 1 -> up-sampling ladder -> 3 x size x size;
* projection head f for the contrastive losses; a linear classifier on M for objective learning.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import torch
from torch import nn

from mercore import NonNegativeInt, PositiveInt, Probability, Settings, load_checkpoint, runtime

MOTION_MODES = ("learned", "difference")


# ----------------------------------------------------------------------------- building blocks
class ConvBlock(nn.Sequential):
    """Table 1: (Conv(out, k, 1), BN, ReLU) twice; padding keeps h x w."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        pad = kernel // 2
        super().__init__(nn.Conv2d(cin, cout, kernel, 1, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, kernel, 1, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """ResNet-18 basic block (two 3x3 convs, identity or 1x1 projection shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, cin, H, W) -> (B, cout, H/s, W/s)
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ResNetTrunk(nn.Module):
    """ResNet-18 without its pooling and classifier: 7x7/2 stem, 3x3/2 max-pool, four stages.

    Written here because torchvision is not a dependency. Weights start random unless
    :func:`load_backbone_weights` is given a checkpoint; ``standardize`` applies the ImageNet
    mean/std to [0, 1] inputs, which pretrained ImageNet weights expect.
    """

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), blocks: Sequence[int] = (2, 2, 2, 2),
                 in_channels: int = 3, standardize: bool = False) -> None:
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"backbone widths {list(widths)} and blocks {list(blocks)} must be equally long")
        self.widths, self.standardize = list(widths), standardize
        if standardize:
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(*[BasicBlock(cin if j == 0 else w, w, stride if j == 0 else 1) for j in range(n)]))
            cin = w
        self.layers = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, C, H/32, W/32)
        if self.standardize:
            x = (x - self.mean) / self.std
        return self.layers(self.stem(x))


_TORCHVISION_NAMES = [  # torchvision resnet key -> ours; fc.* (the ImageNet classifier) is dropped
    (re.compile(r"^conv1\."), "stem.0."),
    (re.compile(r"^bn1\."), "stem.1."),
    (re.compile(r"^layer(\d)\.(\d+)\.downsample\."), lambda m: f"layers.{int(m[1]) - 1}.{m[2]}.shortcut."),
    (re.compile(r"^layer(\d)\.(\d+)\."), lambda m: f"layers.{int(m[1]) - 1}.{m[2]}."),
]


def load_backbone_weights(trunk: ResNetTrunk, path: str | Path) -> None:
    """Initialise the trunk from a ResNet checkpoint, e.g. torchvision's ImageNet ``resnet18``
    state dict (the paper's "backbone for generic features"; nothing is downloaded here).

    Accepts torchvision's key names or this trunk's own (``stem.*``, ``layers.*``), optionally
    under a ``state_dict`` entry. Loaded with ``weights_only=True``; every trunk tensor must be
    present with the same shape, otherwise the error names the file and the keys at fault.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.backbone_weights: no such file {path}")
    state = load_checkpoint(path)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"model.backbone_weights: {path} holds a {type(state).__name__}, not a state dict")
    renamed = {}
    for key, value in state.items():
        key = str(key).removeprefix("module.")
        if key.startswith("fc."):
            continue
        for pattern, repl in _TORCHVISION_NAMES:
            key = pattern.sub(repl, key, count=1)
        renamed[key] = value
    own = trunk.state_dict()
    missing = sorted(set(own) - set(renamed))
    unexpected = sorted(set(renamed) - set(own))
    wrong = sorted(k for k in set(own) & set(renamed) if tuple(renamed[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        details = "; ".join(f"{what}: {keys[:5]}{' ...' if len(keys) > 5 else ''}" for what, keys in
                            (("missing", missing), ("unexpected", unexpected), ("shape differs", wrong)) if keys)
        raise ValueError(f"model.backbone_weights: {path} does not fit the trunk of widths "
                         f"{trunk.widths} ({details})")
    trunk.load_state_dict(renamed)


class Branch(nn.Module):
    """Shape or texture branch: Conv blocks on the generic maps, global pooling, FC layers -> d."""

    def __init__(self, cin: int, conv_width: int, conv_blocks: int, fc_hidden: Sequence[int], dim: int) -> None:
        super().__init__()
        convs, c = [], cin
        for _ in range(conv_blocks):
            convs.append(ConvBlock(c, conv_width))
            c = conv_width
        self.convs = nn.Sequential(*convs)
        fcs: list[nn.Module] = []
        for h in fc_hidden:
            fcs += [nn.Linear(c, h), nn.ReLU(inplace=True)]
            c = h
        fcs.append(nn.Linear(c, dim))
        self.fc = nn.Sequential(*fcs)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, d)
        return self.fc(self.convs(maps).mean((2, 3)))


class FeatureSeparator(nn.Module):
    """Backbone + shape branch + texture branch (Fig. 4); the texture branch can be dropped."""

    def __init__(self, backbone: ResNetTrunk, shape: Branch, texture: Branch | None) -> None:
        super().__init__()
        self.backbone, self.shape, self.texture = backbone, shape, texture

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:  # (B, 3, H, W) -> S, T (B, d)
        maps = self.backbone(x)
        return self.shape(maps), self.texture(maps) if self.texture is not None else None

    def shape_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, d)
        return self.shape(self.backbone(x))


class MotionExtractor(nn.Module):
    """E: dS = |S_a - S_o|, M = C2(concat(C1(dS), S_a)) (Section 3.2.2).

    ``mode="difference"`` is the Table 7 ablation: M = dS, no parameters. The vectors are d x 1 x 1
    maps, where a 3x3 convolution sees only its centre tap; ``kernel`` 1 (default) drops the 8/9 of
    weights that never see data, ``kernel`` 3 keeps Table 1 literally.
    """

    def __init__(self, dim: int, mode: str = "learned", kernel: int = 1) -> None:
        super().__init__()
        if mode not in MOTION_MODES:
            raise ValueError(f"model.motion_extractor must be one of {MOTION_MODES}, got {mode!r}")
        self.mode = mode
        if mode == "learned":
            self.c1 = ConvBlock(dim, dim, kernel)
            self.c2 = ConvBlock(2 * dim, dim, kernel)

    def forward(self, s_onset: torch.Tensor, s_apex: torch.Tensor) -> torch.Tensor:  # (B, d) x2 -> (B, d)
        delta = (s_apex - s_onset).abs()
        if self.mode == "difference":
            return delta
        d = delta[..., None, None]  # (B, d, 1, 1)
        m = self.c2(torch.cat([self.c1(d), s_apex[..., None, None]], 1))  # (B, d, 1, 1)
        return m.flatten(1)


def _up_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ApexReconstructor(nn.Module):
    """R (Table 2): concat(M, T_o) as a 2d x 1 x 1 map up to a 3 x size x size image.

    At 224 it is Table 2 row by row: three {Up(2), Conv(512), BN, ReLU} to 8x8, AvgPool(2, 1) to
    7x7, four up-convs (512, 256, 128, 64) to 112, five Conv blocks (32), Up(2), Conv(3), ReLU. The
    upper part always multiplies by 32, so ``size`` must be 32 * base; the lower part doubles from
    1x1 to the next power of two >= base and average-pools (kernel 2^k - base + 1, stride 1) down
    to base: base 7 (224) -> 8 -> 7 as in the paper, base 3 (96) -> 4 -> 3, base 2 (64) -> 2.
    """

    def __init__(self, in_channels: int, size: int, widths: Sequence[int] = (512, 256, 128, 64),
                 refine_width: int = 32, refine_blocks: int = 5) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"model.recon.widths needs the four up-conv widths of Table 2, got {list(widths)}")
        if size % 32 or size < 32:
            raise ValueError(f"the reconstruction ladder needs an input size that is a multiple of 32, got {size}")
        base = size // 32
        k = math.ceil(math.log2(base)) if base > 1 else 0
        lower: list[nn.Module] = []
        c = in_channels
        for _ in range(k):
            lower.append(_up_conv(c, widths[0]))
            c = widths[0]
        if 2 ** k > base:
            lower.append(nn.AvgPool2d(2 ** k - base + 1, 1))
        self.lower = nn.Sequential(*lower)
        upper: list[nn.Module] = []
        for w in widths:
            upper.append(_up_conv(c, w))
            c = w
        for _ in range(refine_blocks):
            upper.append(ConvBlock(c, refine_width))
            c = refine_width
        upper += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, 3, 3, 1, 1), nn.ReLU()]
        self.upper = nn.Sequential(*upper)
        self.size = size

    def forward(self, code: torch.Tensor) -> torch.Tensor:  # (B, 2d) -> (B, 3, size, size)
        return self.upper(self.lower(code[..., None, None]))


class ProjectionHead(nn.Module):
    """f: the space of the contrastive losses; outputs on the unit sphere so the margin has a scale."""

    def __init__(self, dim: int, hidden: int, out: int, normalize: bool = True) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., out)
        z = self.mlp(x)
        return nn.functional.normalize(z, dim=-1) if self.normalize else z


# ----------------------------------------------------------------------------- the whole model
@dataclass(kw_only=True)
class MoExtConfig(Settings):
    """The ``model`` config section, plus the input ``size`` (``features.size``)."""

    section = "model"

    backbone_widths: list[PositiveInt]
    backbone_blocks: list[PositiveInt]
    backbone_weights: str | None
    feature_dim: PositiveInt
    branch_conv_blocks: NonNegativeInt
    branch_fc: list[PositiveInt]
    motion_extractor: Literal["learned", "difference"]
    motion_kernel: PositiveInt
    recon_widths: list[PositiveInt]
    recon_refine_width: PositiveInt
    recon_refine_blocks: NonNegativeInt
    projection_hidden: PositiveInt
    projection_out: PositiveInt
    projection_normalize: bool
    dropout: Probability
    size: int = runtime(224)

    def __post_init__(self) -> None:
        """Sizes that must fit together, and the weights file, checked before any work."""
        if not self.backbone_widths or len(self.backbone_widths) != len(self.backbone_blocks):
            raise ValueError(f"model.backbone_widths {self.backbone_widths} and model.backbone_blocks "
                             f"{self.backbone_blocks} must be equally long and not empty")
        if len(self.recon_widths) != 4:
            raise ValueError(f"model.recon_widths needs the four up-conv widths of Table 2, got {self.recon_widths}")
        if self.backbone_weights is not None and not Path(self.backbone_weights).expanduser().is_file():
            raise ValueError(f"model.backbone_weights: no such file {self.backbone_weights}")


class MoExtModel(nn.Module):
    """Separator + motion extractor + classifier; reconstruction and projection for pre-training.

    ``forward(batch)`` is objective learning: logits from the motion features of the ``onset``
    and ``apex`` streams (texture branch unused). :meth:`pretrain_outputs` is the Fig. 2 pass.
    :meth:`drop_pretraining_modules` removes the texture branch, R and f after pre-training.
    """

    def __init__(self, cfg: MoExtConfig, num_classes: int) -> None:
        super().__init__()
        d = cfg.feature_dim
        backbone = ResNetTrunk(cfg.backbone_widths, cfg.backbone_blocks, standardize=cfg.backbone_weights is not None)
        if cfg.backbone_weights is not None:
            load_backbone_weights(backbone, cfg.backbone_weights)
        c = backbone.out_channels

        def branch() -> Branch:
            return Branch(c, c, cfg.branch_conv_blocks, cfg.branch_fc, d)

        self.cfg = cfg
        self.separator = FeatureSeparator(backbone, branch(), branch())
        self.motion = MotionExtractor(d, cfg.motion_extractor, cfg.motion_kernel)
        self.reconstructor: ApexReconstructor | None = ApexReconstructor(
            2 * d, cfg.size, cfg.recon_widths, cfg.recon_refine_width, cfg.recon_refine_blocks)
        self.projection: ProjectionHead | None = ProjectionHead(d, cfg.projection_hidden, cfg.projection_out,
                                                                cfg.projection_normalize)
        self.classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(d, num_classes))

    def motion_features(self, onset: torch.Tensor, apex: torch.Tensor) -> torch.Tensor:  # (B,3,H,W) x2 -> (B, d)
        b = onset.shape[0]
        s = self.separator.shape_features(torch.cat([onset, apex]))  # (2B, d), one BN batch for both frames
        return self.motion(s[:b], s[b:])

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:  # -> (B, num_classes)
        return self.classifier(self.motion_features(batch["onset"], batch["apex"]))

    @property
    def has_pretraining_modules(self) -> bool:
        return self.separator.texture is not None and self.reconstructor is not None and self.projection is not None

    def pretrain_outputs(self, views: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fig. 2 on expansion sets: ``views`` (B, 2, V, 3, H, W) = (sample, onset/apex, view, image).

        Returns shape and texture vectors of every view (B, 2, V, d), the motion features M
        (B, d) and the reconstructed apex (B, 3, H, W) from view 0 (the original pair).
        """
        if not self.has_pretraining_modules:
            raise RuntimeError("the texture branch / reconstruction / projection were dropped after pre-training")
        b, two, v = views.shape[:3]
        s, t = self.separator(views.flatten(0, 2))  # (B*2*V, d) each
        s, t = s.view(b, two, v, -1), t.view(b, two, v, -1)
        m = self.motion(s[:, 0, 0], s[:, 1, 0])  # (B, d)
        recon = self.reconstructor(torch.cat([m, t[:, 0, 0]], 1))  # (B, 3, H, W)
        return {"shape": s, "texture": t, "motion": m, "recon": recon}

    def drop_pretraining_modules(self) -> None:
        """Objective learning (Section 3.4): the separator becomes a shape extractor."""
        self.separator.texture = None
        self.reconstructor = None
        self.projection = None


def build_model(model_cfg: Mapping[str, Any], num_classes: int, size: int) -> MoExtModel:
    return MoExtModel(MoExtConfig.from_config(model_cfg, size=int(size)), num_classes)
