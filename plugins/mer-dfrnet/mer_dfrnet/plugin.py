"""The DFR-Net method as the mer core sees it: config, input streams, model, trainer stages."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from mercore import FeatureRequest, Method, NonNegativeFloat, Probability, Settings, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from mercore import SupervisedTrainer


@dataclass(frozen=True, kw_only=True)
class Augment(Settings):
    """The ``augment`` section, checked before any work (read first inside a fold)."""

    section = "augment"

    flip: Probability
    crop_pad: NonNegativeFloat
    flow_streams: tuple[str, ...]


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
        from .model import STREAM_OF, DFRNetConfig

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
        from .model import build_model  # imports torch: only when a model is built, not when the plugin loads

        return build_model(config["model"], num_classes)

    def augment(self, config: Mapping[str, Any]) -> Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]] | None:
        from .augment import FlipCropAugment

        spec = Augment.from_config(config["augment"])
        unknown = sorted(set(spec.flow_streams) - set(self.features(config)))
        if not spec.flow_streams or unknown:
            raise ValueError(f"augment.flow_streams {list(spec.flow_streams)} must name the flow streams (their u is "
                             f"mirrored on a flip) among the method's streams {sorted(self.features(config))}")
        if spec.flip == 0 and spec.crop_pad == 0:
            return None
        return FlipCropAugment(spec.flip, spec.crop_pad, spec.flow_streams)

    def stages(self, config: Mapping[str, Any]) -> list[SupervisedTrainer]:
        from .augment import DFRNetTrainer

        return [DFRNetTrainer.from_config(config["train"], augment=self.augment(config))]


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(DFRNet)
