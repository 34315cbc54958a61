"""The AHMSA-Net method as the mer core sees it: config, input stream, model, trainer stage."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from mercore import FeatureRequest, Method, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


NOT_STREAMS = ("stream", "align")  # keys of `features` that are not an extractor's section


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

    def features(self, config: Mapping[str, Any]) -> dict[str, FeatureRequest]:
        """The ``features.stream`` extractor with its section's parameters; ``features.align`` goes to
        the extractors that read clip frames (``roi_flow`` from clips, ``flow_uvs``)."""
        feats = config["features"]
        stream = feats["stream"]
        if stream not in feats or stream in NOT_STREAMS:
            options = sorted(k for k in feats if k not in NOT_STREAMS)
            raise ValueError(f"features.stream {stream!r} has no parameter section; choose one of: {', '.join(options)}")
        params = dict(feats[stream] or {})
        if stream == "flow_uvs" or stream == "roi_flow" and params.get("source", "clips") == "clips":
            params.setdefault("align", feats.get("align", "none"))
        if "size" in params and int(params["size"]) != int(config["model"]["image_size"]):
            raise ValueError(f"features.{stream}.size {params['size']} differs from model.image_size "
                             f"{config['model']['image_size']}")
        return {"flow": FeatureRequest(stream, params)}

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import build_model  # imports torch: only when a model is built, not when the plugin loads

        return build_model(config["model"], num_classes)


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(AHMSANet)
