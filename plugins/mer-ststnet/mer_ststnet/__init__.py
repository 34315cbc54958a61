"""mer-ststnet: STSTNet (Liong et al., FG 2019) as a mer method plugin."""
from .model import STSTNetModel
from .plugin import STSTNet

__version__ = "0.1.0"
__all__ = ["STSTNet", "STSTNetModel", "__version__"]
