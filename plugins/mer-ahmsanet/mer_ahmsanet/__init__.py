"""mer-ahmsanet: AHMSA-Net as a mer method plugin."""
from .model import AHMSANetConfig, build_model
from .model import AHMSANet as AHMSANetModel
from .plugin import AHMSANet

__version__ = "0.1.0"
__all__ = ["AHMSANet", "AHMSANetConfig", "AHMSANetModel", "build_model", "__version__"]
