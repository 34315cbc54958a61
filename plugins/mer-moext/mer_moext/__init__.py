"""mer-moext: MoExt (motion extraction with pre-training) as a mer method plugin."""
from .model import MoExtConfig, MoExtModel, build_model
from .plugin import MoExt
from .pretrain import MirrorRotate, MoExtPretrainer, ObjectiveTrainer, ViewExpansion

__version__ = "0.1.0"
__all__ = ["MirrorRotate", "MoExt", "MoExtConfig", "MoExtModel", "MoExtPretrainer", "ObjectiveTrainer",
           "ViewExpansion", "build_model", "__version__"]
