"""mer-rrmfnet: RRMFNet + perturbation training (PT) as a mer method plugin."""
from .model import TABLE5_MODELS, RRMFNetConfig, RRMFNetModel, build_model
from .plugin import RRMFNet

__version__ = "0.1.0"
__all__ = ["RRMFNet", "RRMFNetConfig", "RRMFNetModel", "TABLE5_MODELS", "build_model", "__version__"]
