"""mercore: the core of the mer micro-expression recognition framework.

Plugins import only from this module (and ``mercore.nn`` / ``mercore.testing`` for building
blocks and contract tests): it is the public API.
"""
from .data.dataset import Dataset, DatasetError, LoadedDataset, LoadOptions
from .data.frames import CorruptFrameError, read_image, resize, to_gray, write_image
from .data.tensors import FoldData, TensorSet
from .features.store import FeatureError
from .hookspecs import hookimpl
from .interfaces import (Encoder, Evaluator, FeatureExtractor, FeatureRequest, FeatureSource, Fusion, Method,
                         StageContext, Trainer)
from .io import load_checkpoint
from .labels import CASME2_SDE5, MEGC3, SAMM_SDE5, LabelSet
from .sample import Sample
from .training.supervised import EarlyStopping, SupervisedTrainer, predict_logits

__version__ = "0.1.0"

__all__ = [
    "CASME2_SDE5", "CorruptFrameError", "Dataset", "DatasetError", "EarlyStopping", "Encoder", "Evaluator",
    "FeatureError", "FeatureExtractor", "FeatureRequest", "FeatureSource", "FoldData", "Fusion", "LabelSet",
    "LoadOptions", "LoadedDataset", "MEGC3", "Method", "SAMM_SDE5", "Sample", "StageContext", "SupervisedTrainer",
    "TensorSet", "Trainer", "hookimpl", "load_checkpoint", "predict_logits", "read_image", "resize", "to_gray",
    "write_image", "__version__",
]
