"""The STSTNet method as the mer core sees it: config, model, and the hook that registers them.

This plugin is the template ``mer new-plugin`` copies. A method plugin is:
- ``config.yaml``: the paper's setup, its variants and CPU-sized profiles; its ``features``
  section declares the input streams (``features.streams``: an extractor per batch key and
  source), to which the core adds ``features.size`` and, on clips, ``features.align``;
- a ``Method`` subclass that declares its sections' types (``config_class``: checked by the core
  before any work, handed over typed by ``settings(config)``) and builds the model from them
  (``build_model``); its input streams (``features``) and trainer stages (``stages``: one
  supervised stage set by the config's ``train`` section) are the core's defaults;
- a ``mer_register_methods`` hook, found through the ``mer`` entry point in ``pyproject.toml``.
Loading the entry point must not import torch (``mer plugins`` lists every plugin): the model is
imported inside the method that builds it, and the package ``__init__`` is lazy.
The core owns data loading, feature caching, the LOSO loop and the metrics.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from mercore import Method, hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .model import STSTNetSettings


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

    def config_class(self) -> type[STSTNetSettings]:
        from .model import STSTNetSettings  # imports torch: only when asked, not when the plugin loads

        return STSTNetSettings

    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        from .model import build_model

        settings = self.settings(config)
        return build_model(settings.model, num_classes, size=settings.features.size)


@hookimpl
def mer_register_methods(register: Callable[[Any], None]) -> None:
    register(STSTNet)
