"""mer-htnet: HTNet (Wang et al., Neurocomputing 2024) as a mer method plugin."""
from .model import HTNetConfig, HTNetModel, build_model
from .plugin import HTNet

__version__ = "0.1.0"
__all__ = ["HTNet", "HTNetConfig", "HTNetModel", "build_model", "__version__"]
