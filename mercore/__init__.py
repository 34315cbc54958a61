"""mercore: the core of the mer micro-expression recognition framework.

Plugins import only from this module (and ``mercore.nn`` / ``mercore.testing`` for building
blocks and contract tests, ``mercore.lazy`` for a lazy package ``__init__``): it is the public API. Names are imported on first use, so that
``import mercore``, ``mer --help`` and ``mer plugins`` do not load torch.
"""
from typing import TYPE_CHECKING

from .lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .config import check_keys
    from .data.dataset import Dataset, DatasetError, LoadedDataset, LoadOptions
    from .data.frames import CorruptFrameError, read_image, resize, to_gray, write_image
    from .data.tensors import FoldData, TensorSet
    from .features.store import FeatureError
    from .hookspecs import hookimpl
    from .interfaces import (Evaluator, FeatureExtractor, FeatureRequest, FeatureSource, Method, StageContext,
                             Trainer)
    from .io import load_checkpoint
    from .labels import CASME2_SDE5, MEGC3, SAMM_SDE5, LabelSet
    from .nn.base import Encoder, Fusion
    from .sample import Sample
    from .training.loop import Optimisation, Step, autocast, train_epochs
    from .training.supervised import EarlyStopping, SupervisedTrainer, predict_logits

__version__ = "0.1.0"

_SOURCES = {
    **dict.fromkeys(("Dataset", "DatasetError", "LoadedDataset", "LoadOptions"), ".data.dataset"),
    **dict.fromkeys(("CorruptFrameError", "read_image", "resize", "to_gray", "write_image"), ".data.frames"),
    **dict.fromkeys(("FoldData", "TensorSet"), ".data.tensors"),
    "FeatureError": ".features.store",
    "check_keys": ".config",
    "hookimpl": ".hookspecs",
    **dict.fromkeys(("Evaluator", "FeatureExtractor", "FeatureRequest", "FeatureSource", "Method", "StageContext",
                     "Trainer"), ".interfaces"),
    "load_checkpoint": ".io",
    **dict.fromkeys(("CASME2_SDE5", "MEGC3", "SAMM_SDE5", "LabelSet"), ".labels"),
    **dict.fromkeys(("Encoder", "Fusion"), ".nn.base"),
    "Sample": ".sample",
    **dict.fromkeys(("EarlyStopping", "SupervisedTrainer", "predict_logits"), ".training.supervised"),
    **dict.fromkeys(("Optimisation", "Step", "autocast", "train_epochs"), ".training.loop"),
}
__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)

__all__ = [
    "CASME2_SDE5", "CorruptFrameError", "Dataset", "DatasetError", "EarlyStopping", "Encoder", "Evaluator",
    "FeatureError", "FeatureExtractor", "FeatureRequest", "FeatureSource", "FoldData", "Fusion", "LabelSet",
    "LoadOptions", "LoadedDataset", "MEGC3", "Method", "Optimisation", "SAMM_SDE5", "Sample", "StageContext", "Step",
    "SupervisedTrainer", "TensorSet", "Trainer", "autocast", "check_keys", "hookimpl", "load_checkpoint", "predict_logits",
    "read_image", "resize", "to_gray", "train_epochs",
    "write_image", "__version__",
]
