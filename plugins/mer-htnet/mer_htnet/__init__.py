"""mer-htnet: HTNet (Wang et al., Neurocomputing 2024) as a mer method plugin.

Exports are imported on first use: the entry point ``mer_htnet.plugin`` imports this package, and
``mer plugins`` must not load torch.
"""
from typing import TYPE_CHECKING

from mercore.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .model import HTNetConfig, HTNetModel, build_model
    from .plugin import HTNet

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(__name__, {
    "HTNet": ".plugin",
    "HTNetConfig": ".model",
    "HTNetModel": ".model",
    "build_model": ".model",
})
__all__ = ["HTNet", "HTNetConfig", "HTNetModel", "build_model", "__version__"]
