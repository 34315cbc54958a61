"""The DFR-Net method as the mer core sees it: config, input streams, model, trainer stages."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

from mercore import FeatureRequest, FoldData, Method, StageContext, SupervisedTrainer, hookimpl

from .model import STREAM_OF, DFRNetConfig, build_model


class FlipCropAugment:
    """Horizontal flip and pad-and-crop, drawn per sample and applied identically to all of a
    sample's streams; a flipped flow map has its horizontal component u negated.

    Args:
        flip: probability of a horizontal flip.
        crop_pad: replicate-padding as a fraction of the map size; the crop back to the original
            size is a random translation of up to that many pixels (0 turns it off).
        flow_streams: streams whose channel 0 is u (negated when flipped).

    The trainer hands over batches already normalised per channel (``data.normalize``), where
    zero motion is ``z0 = -mean_u / std_u``, not 0: a flip then maps ``z -> 2 z0 - z`` (the
    normalised ``-u``). :meth:`bind` reads ``z0`` from the fold's normaliser; unbound, z0 = 0.
    """

    def __init__(self, flip: float = 0.5, crop_pad: float = 0.0625, flow_streams: tuple[str, ...] = ("flow",)) -> None:
        if not 0.0 <= float(flip) <= 1.0 or float(crop_pad) < 0:
            raise ValueError(f"augment.flip must be in [0, 1] and augment.crop_pad >= 0, got {flip}, {crop_pad}")
        self.flip, self.crop_pad, self.flow_streams = float(flip), float(crop_pad), tuple(flow_streams)
        self.u_zero: dict[str, float] = {}

    def bind(self, normalize: Callable[[str, torch.Tensor], torch.Tensor]) -> "FlipCropAugment":
        """Take zero motion of each flow stream's u in normalised units from ``normalize``
        (``StageContext.normalize``: per-channel affine, fitted on the fold's training set)."""
        self.u_zero = {s: float(normalize(s, torch.zeros(1, 1, 1, 1)).reshape(-1)[0]) for s in self.flow_streams}
        return self

    def __call__(self, inputs: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        first = next(iter(inputs.values()))
        b, size = first.shape[0], first.shape[-1]
        flips = torch.rand(b, generator=generator) < self.flip  # (B,)
        pad = int(round(self.crop_pad * size))
        offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator) if pad else None  # (B, 2)
        out = {}
        for name, x in inputs.items():  # x: (B, C, H, W)
            if x.shape[-1] != size or x.shape[-2] != first.shape[-2]:
                raise ValueError(f"augment expects all streams at one size; {name!r} is {tuple(x.shape)}")
            m = flips.to(x.device).view(b, 1, 1, 1)
            x = torch.where(m, x.flip(-1), x)
            if name in self.flow_streams:  # mirrored motion: u -> -u, i.e. z -> 2 z0 - z once normalised
                x = x.clone()
                z0 = self.u_zero.get(name, 0.0)
                x[:, 0] = torch.where(m[:, 0], 2 * z0 - x[:, 0], x[:, 0])
            if pad:
                h, w = x.shape[-2:]
                padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")  # (B, C, H+2p, W+2p)
                x = torch.stack([padded[i, :, oy:oy + h, ox:ox + w]
                                 for i, (oy, ox) in enumerate(offsets.tolist())])  # (B, C, H, W)
            out[name] = x
        return out


class DFRNetTrainer(SupervisedTrainer):
    """``SupervisedTrainer`` that first binds the augmentation to the fold's normaliser, so a
    flipped flow map gets exactly the normalised ``-u``."""

    def fit(self, model: nn.Module, data: FoldData, ctx: StageContext) -> nn.Module:
        if isinstance(self.augment, FlipCropAugment):
            self.augment.bind(ctx.normalize)
        return super().fit(model, data, ctx)


class DFRNet(Method):
    """DynamicFusionResNet: apex frame, optical flow and frame difference fused early, then a
    ResNet with channel and spatial attention (Li, Huang & Wu, CMC 2025)."""

    name = "dfrnet"
    description = "DFR-Net: spatial/temporal/differential branches, attention fusion, CA+SA ResNet (CMC 2025)"
    variants = {
        "full": "three branches: apex frame, onset->apex flow (u, v, strain), |apex - onset|",
        "apex-flow": "apex + flow only (differential branch off), for precomputed-flow releases without an onset frame",
    }
    default_variant = "full"
    inputs = ("clips", "flow-release")
    config_package = "mer_dfrnet"

    def features(self, config: Mapping[str, Any]) -> dict[str, FeatureRequest]:
        """One request per branch; ``features.size`` goes to every stream, ``features.align`` to
        the clip extractors (a release's maps are already cropped), unless a stream's params set them."""
        branches = DFRNetConfig.from_config(config["model"]).branches
        feats = config["features"]
        size = feats.get("size")
        out = {}
        for branch in branches:
            stream = STREAM_OF[branch]
            spec = feats[stream]
            params = dict(spec.get("params") or {})
            if not str(spec["extractor"]).startswith("release_"):
                params = {"align": feats.get("align", "none"), **params}
            if size is not None:
                params = {"size": size, **params}
            out[stream] = FeatureRequest(spec["extractor"], params)
        return out

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        return build_model(config["model"], num_classes)

    def augment(self, config: Mapping[str, Any]) -> Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]] | None:
        spec = dict(config.get("augment") or {})
        if not spec or (float(spec.get("flip", 0)) == 0 and float(spec.get("crop_pad", 0)) == 0):
            return None
        return FlipCropAugment(spec.get("flip", 0.5), spec.get("crop_pad", 0.0625), tuple(spec.get("flow_streams", ("flow",))))

    def stages(self, config: Mapping[str, Any]) -> list[SupervisedTrainer]:
        return [DFRNetTrainer.from_config(config["train"], augment=self.augment(config))]


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(DFRNet)
