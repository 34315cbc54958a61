"""The HTNet method as the mer core sees it: config (its input stream, roi_flow, declared there), model."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from mercore import FeatureRequest, Method, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


class HTNet(Method):
    """Hierarchical Transformer Network: local self-attention within blocks of the four facial
    regions' flow, block aggregation up to one block (Wang et al., Neurocomputing 2024)."""

    name = "htnet"
    description = "HTNet: hierarchical transformer on four facial regions of the 28x28 u/v/strain map (Neurocomputing 2024)"
    variants = {
        "base": "HTNet as published (without the test-subject epoch selection of its code)",
        "pt": "HTNet trained with perturbation training (train.perturbation.enabled)",
    }
    default_variant = "base"
    inputs = ("clips", "flow-release")
    config_package = "mer_htnet"

    def features(self, config: Mapping[str, Any]) -> dict[str, FeatureRequest]:
        """The declared ``flow`` stream, once ``features.size`` is checked against the network's input."""
        requests = super().features(config)
        size, image_size = config["features"]["size"], config["model"]["image_size"]
        if size != image_size:
            raise ValueError(f"features.size ({size}) must equal model.image_size ({image_size})")
        return requests

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import build_model  # imports torch: only when a model is built, not when the plugin loads

        return build_model(config["model"], num_classes)


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(HTNet)
