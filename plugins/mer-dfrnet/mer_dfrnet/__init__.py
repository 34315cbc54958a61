"""mer-dfrnet: DFR-Net (DynamicFusionResNet) as a mer method plugin.

Exports are imported on first use: the entry point ``mer_dfrnet.plugin`` imports this package, and
``mer plugins`` must not load torch.
"""
from typing import TYPE_CHECKING

from mercore.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .augment import FlipCropAugment
    from .model import DFRNetConfig, DFRNetModel, build_model
    from .plugin import DFRNet

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(__name__, {
    "DFRNet": ".plugin",
    "DFRNetConfig": ".model",
    "DFRNetModel": ".model",
    "FlipCropAugment": ".augment",
    "build_model": ".model",
})
__all__ = ["DFRNet", "DFRNetConfig", "DFRNetModel", "FlipCropAugment", "build_model", "__version__"]
