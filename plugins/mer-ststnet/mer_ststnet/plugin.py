"""The STSTNet method as the mer core sees it: config, input streams, model, trainer stages.

This plugin is the template ``mer new-plugin`` copies. A method plugin is:
- ``config.yaml``: the paper's setup, its variants and CPU-sized profiles;
- a ``Method`` subclass that turns a resolved config into input streams (``features``) and a model
  (``build_model``); its trainer stages (``stages``) are the core's default, one supervised stage
  set by the config's ``train`` section;
- a ``mer_register_methods`` hook, found through the ``mer`` entry point in ``pyproject.toml``.
Loading the entry point must not import torch (``mer plugins`` lists every plugin): the model is
imported inside the method that builds it, and the package ``__init__`` is lazy.
The core owns data loading, feature caching, the LOSO loop and the metrics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from mercore import FeatureRequest, Method, PositiveInt, Settings, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


@dataclass(frozen=True, kw_only=True)
class Features(Settings):
    """The ``features`` section, checked before any work (``source_size: abc`` once failed
    without naming the key); the extractor checks ``backend`` and ``align``."""

    section = "features"

    source: Literal["clips", "release"]
    size: PositiveInt
    source_size: PositiveInt | None
    backend: str
    align: str


class STSTNet(Method):
    """Shallow Triple Stream Three-dimensional CNN (Liong et al., FG 2019): 3, 5 and 8 filters
    of 3x3 on the 28x28 u/v/strain map ("three-dimensional" = the three flow channels)."""

    name = "ststnet"
    description = "STSTNet: shallow triple-stream CNN (3/5/8 filters of 3x3) on 28x28 u/v/strain maps (FG 2019)"
    variants = {
        "base": "STSTNet as published",
        "pt": "STSTNet trained with perturbation training (train.perturbation.enabled)",
    }
    default_variant = "base"
    # "flow-release": also runs on precomputed-flow releases (config section inputs.flow-release)
    inputs = ("clips", "flow-release")
    config_package = "mer_ststnet"

    def features(self, config: Mapping[str, Any]) -> dict[str, FeatureRequest]:
        feats = Features.from_config(config["features"])
        if feats.source == "clips":
            params = {"size": feats.size, "backend": feats.backend, "normalize": "minmax", "align": feats.align}
            if feats.source_size:  # u, v and strain on the face, then reduced: how the release maps were made
                params.update(source_size=feats.source_size, pool="maps")
            return {"flow": FeatureRequest("flow_uvs", params)}
        # release: the release's maps are already min-max scaled u/v/strain
        return {"flow": FeatureRequest("release_flow", {"size": feats.size})}

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import build_model  # imports torch: only when a model is built, not when the plugin loads

        return build_model(config["model"], num_classes, size=int(config["features"]["size"]))


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(STSTNet)
