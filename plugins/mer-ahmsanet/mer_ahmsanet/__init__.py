"""mer-ahmsanet: AHMSA-Net as a mer method plugin.

Exports are imported on first use: the entry point ``mer_ahmsanet.plugin`` imports this package, and
``mer plugins`` must not load torch.
"""
from typing import TYPE_CHECKING

from mercore.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .model import AHMSANet as AHMSANetModel
    from .model import AHMSANetConfig, build_model
    from .plugin import AHMSANet

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(__name__, {
    "AHMSANet": ".plugin",
    "AHMSANetConfig": ".model",
    "AHMSANetModel": ".model:AHMSANet",
    "build_model": ".model",
})
__all__ = ["AHMSANet", "AHMSANetConfig", "AHMSANetModel", "build_model", "__version__"]
