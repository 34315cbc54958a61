"""The five interfaces of the product card, plus the ``Method`` a plugin hands to the core.

A method is a composition: feature extractors turn clips into arrays (the streams its YAML
declares, :mod:`mercore.streams`), a model turns arrays into logits, trainer stages fit the model
on one LOSO fold, and an evaluator runs the protocol. A plugin must provide the model
(``Method.build_model``); encoders and fusions (``torch.nn.Module``s in :mod:`mercore.nn.base`)
are optional building blocks of it, checked by the core when a model uses them. The core owns the loop over
folds; plugins never do. Nothing here imports torch at import time: plugins define their
``Method`` with these classes, and loading the registry (``mer plugins``) must stay light.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import numpy as np

from .sample import Sample

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from .data.dataset import LoadedDataset
    from .data.tensors import FoldData
    from .evaluation.results import RunResult


class FeatureExtractor(abc.ABC):
    """Clip -> one array. Pure and deterministic, so results are cached on disk.

    Subclasses set ``name`` (the registry key), bump ``version`` whenever the algorithm changes
    (that invalidates cached results) and take their parameters as keyword arguments; the
    parameters returned by :meth:`params` form the cache key together with the clip's content.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"

    def __init__(self, **params: Any) -> None:
        self._params = dict(params)

    def params(self) -> dict[str, Any]:
        """Parameters that change the output; part of the cache key."""
        return dict(self._params)

    @abc.abstractmethod
    def extract(self, sample: Sample, features: "FeatureSource") -> np.ndarray:
        """Compute the array for ``sample``; other features come from ``features`` (cached)."""

    def mirror_centre(self) -> float | None:
        """For a flow map whose channel 0 is the horizontal motion u: the value of u that a
        left-right mirror keeps, so that a mirrored map has ``u -> 2 * centre - u`` (0 for flow
        in pixels, 0.5 for a map min-max scaled to [0, 1]). None for inputs that are not flow."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self._params.items()))
        return f"{type(self).__name__}({args})"


class FeatureSource(abc.ABC):
    """What an extractor may ask for: other features of the same clip, through the cache."""

    @abc.abstractmethod
    def get(self, name: str, sample: Sample, **params: Any) -> np.ndarray:
        """The (cached) output of extractor ``name`` with ``params`` on ``sample``."""


@dataclass
class StageContext:
    """What a trainer stage may use besides the model and the data of its fold.

    ``log_metric`` goes to the tracker (one nested run per fold), and so does each file a stage
    writes under ``work_dir`` and passes to ``log_artifact`` (e.g. an image of reconstructions);
    ``extract(request, samples)``
    computes features for samples of the *training* fold (e.g. of magnified clips) through the
    shared cache, and ``normalize(stream, tensor)`` applies the fold's training-set statistics of
    input stream ``stream`` (identity when normalisation is off).
    """

    device: torch.device
    seed: int
    num_classes: int
    class_names: tuple[str, ...]
    fold: str
    work_dir: Path
    amp_dtype: torch.dtype | None = None
    log_metric: Callable[[str, float, int], None] = lambda key, value, step: None
    log_artifact: Callable[[Path], None] = lambda path: None
    progress: bool = True
    extract: Callable[..., torch.Tensor] | None = None
    normalize: Callable[[str, torch.Tensor], torch.Tensor] = lambda stream, tensor: tensor
    #: leakage audit only: records the test subject's predictions after an epoch. Nothing may
    #: read them back during training; they exist to show how inflated test-selected epochs are.
    audit: Callable[[nn.Module, int], None] | None = None
    #: the stage now fitting (its ``stage_name``), set by the core before each stage's ``fit``
    stage: str = ""
    #: for each flow stream: the value of u (channel 0) that a left-right mirror keeps, in the
    #: units the trainer sees (after ``normalize``); a mirrored map has ``u -> 2 * centre - u``
    flow_centres: Mapping[str, float] = field(default_factory=dict)
    #: called after each epoch of a stage with (epochs done, epochs planned): the run's progress bar
    on_epoch: Callable[[int, int], None] = lambda done, epochs: None

    def generator(self, offset: int = 0) -> torch.Generator:
        """A seeded CPU generator, so shuffling and sampling repeat exactly."""
        import torch

        return torch.Generator().manual_seed(self.seed + offset)


class Trainer(abc.ABC):
    """How a model is fitted on one training fold. A method chains several as stages."""

    name: ClassVar[str] = "trainer"

    @abc.abstractmethod
    def fit(self, model: nn.Module, data: "FoldData", ctx: StageContext) -> nn.Module:
        """Train ``model`` on ``data.train`` (``data.val`` holds training subjects only) and return it."""


class Evaluator(abc.ABC):
    """Runs a protocol: ``method`` over every fold of a loaded dataset with a resolved config,
    returning the per-sample predictions and the pooled metrics. The core's is
    :class:`mercore.evaluation.loso.LOSOEvaluator` (LOSO on one corpus or a composite)."""

    @abc.abstractmethod
    def evaluate(self, method: Method, data: LoadedDataset, config: Mapping[str, Any], **options: Any) -> RunResult:
        """Run the protocol; ``options`` are the evaluator's own (e.g. which folds)."""


@dataclass(frozen=True)
class FeatureRequest:
    """One model input stream: which extractor, with which parameters."""

    extractor: str
    params: Mapping[str, Any] = field(default_factory=dict)


class Method(abc.ABC):
    """A published method as a plugin hands it over.

    ``default_config`` is the paper's setup and ``profiles`` hold named overrides (``quick`` for
    CPU runs); both come from the ``config.yaml`` of the package named by ``config_package``, the
    only source of defaults. The core merges config layers, then asks the method for its input
    streams, its model and its trainer stages; only the model has no default.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    variants: ClassVar[Mapping[str, str]] = {}
    default_variant: ClassVar[str | None] = None
    #: input kinds the method can run on: "clips" (raw frames) and/or "flow-release"
    inputs: ClassVar[tuple[str, ...]] = ("clips",)
    #: the package whose ``config.yaml`` holds the defaults, ``variants`` and ``profiles``
    config_package: ClassVar[str | None] = None
    #: config sections (dotted paths) read by a core trainer, by kind (``supervised``, ``triplet``,
    #: ``episodic``): each starts from that trainer's defaults (``mercore/configs/trainers.yaml``),
    #: so the resolved config holds every value the run uses
    trainer_sections: ClassVar[Mapping[str, str]] = {"train": "supervised"}

    def config_file(self) -> dict[str, Any]:
        """``config.yaml`` of ``config_package``, parsed as the core parses every config."""
        if not self.config_package:
            raise TypeError(f"{type(self).__name__}: set `config_package` (the package holding config.yaml) "
                            f"or override default_config()")
        from importlib import resources

        from .config import yaml_load

        return yaml_load(resources.files(self.config_package).joinpath("config.yaml").read_text()) or {}

    def default_config(self) -> dict[str, Any]:
        """The paper's hyperparameters, as a nested dict; ``variant`` overrides live under ``variants``."""
        config = self.config_file()
        config.pop("profiles", None)
        return config

    def profiles(self) -> dict[str, dict[str, Any]]:
        """Named config overrides, e.g. ``{"quick": {...}}`` for a CPU-sized run."""
        return self.config_file().get("profiles") or {} if self.config_package else {}

    def features(self, config: Mapping[str, Any]) -> dict[str, FeatureRequest]:
        """Input streams by the names the model's ``forward`` reads from its batch dict: by default
        those the ``features`` section declares (:mod:`mercore.streams`), with ``features.size`` and,
        for clips, ``features.align`` added by the core. Override it only for logic the YAML cannot
        declare (streams chosen by the model's settings, a selector of the method's own)."""
        from .streams import declared_requests

        return declared_requests(config["features"])

    @abc.abstractmethod
    def build_model(self, config: Mapping[str, Any], num_classes: int) -> nn.Module:
        """A fresh model; ``forward(batch: dict[str, Tensor]) -> logits (B, num_classes)``."""

    def stages(self, config: Mapping[str, Any]) -> list[Trainer]:
        """Trainer stages run in order on every fold; by default one supervised stage set by the
        config's ``train`` section, with this method's :meth:`augment`."""
        from .training.supervised import SupervisedTrainer

        return [SupervisedTrainer.from_config(config["train"], augment=self.augment(config))]

    def augment(self, config: Mapping[str, Any]) -> Callable[[dict[str, torch.Tensor], torch.Generator], dict[str, torch.Tensor]] | None:
        """Optional training-time augmentation of a batch (applied by trainers that accept it)."""
        return None
