"""The RRMFNet + PT method as the mer core sees it: config (its sections typed by ``config_class``,
checked by the core before any work), input streams, model, trainer stage.

Perturbation training is the core's (``mercore.training.perturbation``), switched on through
``train.perturbation`` in this plugin's config; the ``base`` variant turns it off.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from mercore import FeatureRequest, Method, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .model import RRMFNetSettings


class RRMFNet(Method):
    """IncepResizer + ResNet-style backbone + EuRepGFPN + AAB (CBAM) per stream (TV-L1 flow, apex
    frame), FusionBlock, dimensionality reduction and MLP; trained with perturbation training."""

    name = "rrmfnet"
    description = "RRMFNet + PT: IncepResizer, EuRepGFPN, AAB (CBAM), FusionBlock on flow + apex; perturbation training"
    variants = {
        "pt": "RRMFNet + PT: a perturbation phase (colour jitter, Gaussian noise, flip, masking) every 20 epochs",
        "base": "RRMFNet trained without PT",
    }
    default_variant = "pt"
    inputs = ("clips", "flow-release")
    config_package = "mer_rrmfnet"

    def config_class(self) -> type[RRMFNetSettings]:
        from .model import RRMFNetSettings  # imports torch: only when asked, not when the plugin loads

        return RRMFNetSettings

    def features(self, config: Mapping[str, Any]) -> dict[str, FeatureRequest]:
        """The declared streams that ``model.streams`` names (Table 4: flow, apex or both)."""
        streams = self.settings(config).model.streams
        requests = super().features(config)
        return {name: requests[name] for name in streams}

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import build_model  # imports torch: only when a model is built, not when the plugin loads

        return build_model(self.settings(config).model, num_classes)


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(RRMFNet)
