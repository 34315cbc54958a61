"""The five interfaces of the product card; the ``Method`` a plugin hands to the core composes
them (:mod:`mercore.method`, apart so that the trainers, which implement ``Trainer``, and the
default stage, which ``Method`` builds from them, import in one direction only).

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

    from .data.dataset import Dataset, LoadedDataset
    from .data.tensors import FoldData
    from .evaluation.results import RunResult
    from .method import Method


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
    #: every registered dataset adapter by name, from the run's registry (built once, before the
    #: folds): for a stage that reads another corpus than the one evaluated (pre-training data)
    datasets: Mapping[str, Dataset] = field(default_factory=dict)

    def dataset(self, name: str) -> Dataset:
        """The adapter registered as ``name``; a ValueError naming those the context holds."""
        if name not in self.datasets:
            raise ValueError(f"no dataset {name!r} in this stage's context (it holds: "
                             f"{', '.join(sorted(self.datasets)) or 'none'}); the core hands every stage the "
                             f"run's registered adapters, and a context built by hand needs them too")
        return self.datasets[name]

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
