"""The DFR-Net method as the mer core sees it: config (its sections typed in ``settings.py``, checked
by the core before any work), input streams, model, trainer stages."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from mercore import FeatureRequest, Method, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from mercore import SupervisedTrainer

    from .settings import DFRNetSettings


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

    def config_class(self) -> type[DFRNetSettings]:
        from .settings import DFRNetSettings  # imports torch: only when asked, not when the plugin loads

        return DFRNetSettings

    def features(self, config: Mapping[str, Any]) -> dict[str, FeatureRequest]:
        """One request per branch; ``features.size`` goes to every stream, ``features.align`` to
        the clip extractors (a release's maps are already cropped), unless a stream's params set them."""
        return self.settings(config).streams()

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import build_model  # imports torch: only when a model is built, not when the plugin loads

        return build_model(self.settings(config).model, num_classes)

    def augment(self, config: Mapping[str, Any]) -> Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]] | None:
        from .augment import FlipCropAugment

        spec = self.settings(config).augment
        if spec.flip == 0 and spec.crop_pad == 0:
            return None
        return FlipCropAugment(spec.flip, spec.crop_pad, spec.flow_streams)

    def stages(self, config: Mapping[str, Any]) -> list[SupervisedTrainer]:
        from .augment import DFRNetTrainer

        return [DFRNetTrainer.from_config(config["train"], augment=self.augment(config))]


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(DFRNet)
