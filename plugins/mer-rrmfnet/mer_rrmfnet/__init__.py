"""mer-rrmfnet: RRMFNet + perturbation training (PT) as a mer method plugin.

Exports are imported on first use: the entry point ``mer_rrmfnet.plugin`` imports this package, and
``mer plugins`` must not load torch.
"""
from typing import TYPE_CHECKING

from mercore.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .model import TABLE5_MODELS, RRMFNetConfig, RRMFNetModel, build_model
    from .plugin import RRMFNet

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(__name__, {
    "RRMFNet": ".plugin",
    "RRMFNetConfig": ".model",
    "RRMFNetModel": ".model",
    "TABLE5_MODELS": ".model",
    "build_model": ".model",
})
__all__ = ["RRMFNet", "RRMFNetConfig", "RRMFNetModel", "TABLE5_MODELS", "build_model", "__version__"]
