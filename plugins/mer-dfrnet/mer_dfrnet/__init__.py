"""mer-dfrnet: DFR-Net (DynamicFusionResNet) as a mer method plugin."""
from .model import DFRNetConfig, DFRNetModel, build_model
from .plugin import DFRNet, FlipCropAugment

__version__ = "0.1.0"
__all__ = ["DFRNet", "DFRNetConfig", "DFRNetModel", "FlipCropAugment", "build_model", "__version__"]
