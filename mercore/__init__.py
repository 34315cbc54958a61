"""mercore: the core of the mer micro-expression recognition framework.

Plugins import only from this module (and ``mercore.nn`` / ``mercore.testing`` for building
blocks and contract tests): it is the public API. Names are imported on first use, so that
``import mercore``, ``mer --help`` and ``mer plugins`` do not load torch.
"""
from typing import TYPE_CHECKING

from .lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .data.dataset import Dataset, DatasetError, LoadedDataset, LoadOptions
    from .data.frames import CorruptFrameError, read_image, resize, to_gray, write_image
    from .data.tensors import FoldData, TensorSet
    from .features.store import FeatureError
    from .hookspecs import hookimpl
    from .interfaces import Evaluator, FeatureExtractor, FeatureRequest, FeatureSource, StageContext, Trainer
    from .io import load_checkpoint
    from .labels import CASME2_SDE5, MEGC3, SAMM_SDE5, LabelSet
    from .method import Method
    from .nn.base import Encoder, Fusion
    from .sample import Sample
    from .spec import ExecutionOptions, RunSpec
    from .streams import DeclaredFeatures, StreamSource
    from .settings import (Above, AtLeast, Between, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt,
                           Probability, Settings, runtime)
    from .training.episodic import EpisodicTrainer, PrototypeClassifier, PrototypeModel
    from .training.loop import Optimisation, Step, WeightAveraging, autocast, train_epochs
    from .training.supervised import EarlyStopping, SupervisedTrainer, predict_logits
    from .training.triplet import TripletTrainer

__version__ = "0.1.0"

_SOURCES = {
    **dict.fromkeys(("Dataset", "DatasetError", "LoadedDataset", "LoadOptions"), ".data.dataset"),
    **dict.fromkeys(("CorruptFrameError", "read_image", "resize", "to_gray", "write_image"), ".data.frames"),
    **dict.fromkeys(("FoldData", "TensorSet"), ".data.tensors"),
    "FeatureError": ".features.store",
    "hookimpl": ".hookspecs",
    **dict.fromkeys(("Evaluator", "FeatureExtractor", "FeatureRequest", "FeatureSource", "StageContext", "Trainer"),
                    ".interfaces"),
    "Method": ".method",
    "load_checkpoint": ".io",
    **dict.fromkeys(("CASME2_SDE5", "MEGC3", "SAMM_SDE5", "LabelSet"), ".labels"),
    **dict.fromkeys(("Encoder", "Fusion"), ".nn.base"),
    "Sample": ".sample",
    **dict.fromkeys(("ExecutionOptions", "RunSpec"), ".spec"),
    **dict.fromkeys(("DeclaredFeatures", "StreamSource"), ".streams"),
    **dict.fromkeys(("Above", "AtLeast", "Between", "NonNegativeFloat", "NonNegativeInt", "PositiveFloat",
                     "PositiveInt", "Probability", "Settings", "runtime"), ".settings"),
    **dict.fromkeys(("EarlyStopping", "SupervisedTrainer", "predict_logits"), ".training.supervised"),
    **dict.fromkeys(("Optimisation", "Step", "WeightAveraging", "autocast", "train_epochs"), ".training.loop"),
    **dict.fromkeys(("EpisodicTrainer", "PrototypeClassifier", "PrototypeModel"), ".training.episodic"),
    "TripletTrainer": ".training.triplet",
}
__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)

__all__ = sorted(_SOURCES) + ["__version__"]
