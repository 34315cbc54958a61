"""mer-moext: MoExt (motion extraction with pre-training) as a mer method plugin.

Exports are imported on first use: the entry point ``mer_moext.plugin`` imports this package, and
``mer plugins`` must not load torch.
"""
from typing import TYPE_CHECKING

from mercore.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .model import MoExtConfig, MoExtModel, build_model
    from .plugin import MoExt
    from .pretrain import MirrorRotate, MoExtPretrainer, ObjectiveTrainer, ViewExpansion

__version__ = "0.1.0"

__getattr__, __dir__ = lazy_exports(__name__, {
    "MirrorRotate": ".pretrain",
    "MoExt": ".plugin",
    "MoExtConfig": ".model",
    "MoExtModel": ".model",
    "MoExtPretrainer": ".pretrain",
    "ObjectiveTrainer": ".pretrain",
    "ViewExpansion": ".pretrain",
    "build_model": ".model",
})
__all__ = ["MirrorRotate", "MoExt", "MoExtConfig", "MoExtModel", "MoExtPretrainer", "ObjectiveTrainer",
           "ViewExpansion", "build_model", "__version__"]
