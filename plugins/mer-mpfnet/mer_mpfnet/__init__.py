"""MPFNet for the mer framework: CA-I3D encoders, GFE/AFE prior learning, prototypical meta-learning.

Exports are imported on first use: the entry point ``mer_mpfnet.plugin`` imports this package, and
``mer plugins`` must not load torch.
"""
from typing import TYPE_CHECKING

from mercore.lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .method import MPFNet

__getattr__, __dir__ = lazy_exports(__name__, {"MPFNet": ".method"})
__all__ = ["MPFNet"]
