"""The AHMSA-Net method as the mer core sees it: config (its sections typed by ``config_class``,
checked by the core before any work), input stream, model, trainer stage."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from mercore import FeatureRequest, Method, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .model import AHMSANetSettings


class AHMSANet(Method):
    """Adaptive Hierarchical Multi-Scale Attention Network: channel + spatial attention blocks on
    a 16 -> 4 -> 1 patch hierarchy of the 28x28 u/v/strain map (Zhang et al., arXiv 2025)."""

    name = "ahmsanet"
    description = "AHMSA-Net: hierarchical channel+spatial multi-scale attention on 28x28 u/v/strain region maps (arXiv 2025)"
    variants = {
        "regions": "the paper: five landmark-centred regions of the onset->apex TV-L1 u/v/strain map (roi_flow), "
                   "recombined at 28x28; on a precomputed-flow release, cut from its u/v/strain map",
        "whole-face": "the whole-face 28x28 u/v/strain map, no regions (flow_uvs, min-max; a release's map as is)",
    }
    default_variant = "regions"
    inputs = ("clips", "flow-release")
    config_package = "mer_ahmsanet"

    def config_class(self) -> type[AHMSANetSettings]:
        from .model import AHMSANetSettings  # imports torch: only when asked, not when the plugin loads

        return AHMSANetSettings

    def features(self, config: Mapping[str, Any]) -> dict[str, FeatureRequest]:
        """The ``features.stream`` extractor with its section's parameters (AHMSANetFeatures)."""
        return {"flow": self.settings(config).features.request()}

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import build_model  # imports torch: only when a model is built, not when the plugin loads

        return build_model(self.settings(config).model, num_classes)


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(AHMSANet)
