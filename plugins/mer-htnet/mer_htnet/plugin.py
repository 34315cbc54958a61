"""The HTNet method as the mer core sees it: config, input stream (roi_flow), model, trainer stages."""
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
        f = config["features"]
        if int(f["size"]) != int(config["model"]["image_size"]):
            raise ValueError(f"features.size ({f['size']}) must equal model.image_size ({config['model']['image_size']})")
        params = {"layout": f["layout"], "source": f["source"], "source_size": int(f["source_size"]),
                  "size": int(f["size"]), "landmarks": f["landmarks"], "backend": f["backend"]}
        if f["source"] == "clips":
            params["align"] = f.get("align", "none")
        return {"flow": FeatureRequest("roi_flow", params)}

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import build_model  # imports torch: only when a model is built, not when the plugin loads

        return build_model(config["model"], num_classes)


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(HTNet)
