"""mer-ststnet: STSTNet (Liong et al., FG 2019) as a mer method plugin.

Exports are imported on first use: the entry point ``mer_ststnet.plugin`` imports this package, and
``mer plugins`` must not load torch.
"""
from typing import TYPE_CHECKING

from mercore.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .model import STSTNetModel
    from .plugin import STSTNet

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(__name__, {"STSTNet": ".plugin", "STSTNetModel": ".model"})
__all__ = ["STSTNet", "STSTNetModel", "__version__"]
