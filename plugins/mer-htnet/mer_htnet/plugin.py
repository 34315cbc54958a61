"""The HTNet method as the mer core sees it: config (its input stream, roi_flow, declared there; its
sections typed by ``config_class``, checked by the core before any work), model."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from mercore import Method, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .model import HTNetSettings


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

    def config_class(self) -> type[HTNetSettings]:
        from .model import HTNetSettings  # imports torch: only when asked, not when the plugin loads

        return HTNetSettings

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import build_model  # imports torch: only when a model is built, not when the plugin loads

        return build_model(self.settings(config).model, num_classes)


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(HTNet)
