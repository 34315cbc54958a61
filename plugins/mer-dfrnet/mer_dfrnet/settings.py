"""DFR-Net's config sections, typed (the method's ``config_class``): the core checks them before
any work, and the plugin reads its streams, model and augmentation from them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mercore import (FeatureRequest, NonNegativeFloat, PositiveInt, Probability, Settings, StreamSource,
                     SupervisedTrainer)

from .model import STREAM_OF, DFRNetConfig


@dataclass(frozen=True, kw_only=True)
class DFRNetFeatures(Settings):
    """The ``features`` section: one stream per branch (apex frame, flow, frame difference), each
    an extractor and its parameters; ``size`` goes to every stream, ``align`` to the clip extractors."""

    section = "features"

    size: PositiveInt | None
    align: Literal["auto", "dlib", "none"]
    apex: StreamSource
    flow: StreamSource
    diff: StreamSource

    def request(self, stream: str) -> FeatureRequest:
        """``stream``'s request, unless its params set ``size`` or ``align`` themselves (a release's
        maps are already cropped: no ``align`` for its extractors)."""
        source: StreamSource = getattr(self, stream)
        params = dict(source.params)
        if not source.extractor.startswith("release_"):
            params = {"align": self.align, **params}
        if self.size is not None:
            params = {"size": self.size, **params}
        return FeatureRequest(source.extractor, params)


@dataclass(frozen=True, kw_only=True)
class Augment(Settings):
    """The ``augment`` section: flip and crop of every stream, u mirrored in ``flow_streams``."""

    section = "augment"

    flip: Probability
    crop_pad: NonNegativeFloat
    flow_streams: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class DFRNetSettings(Settings):
    """DFR-Net's sections of a resolved config, each typed; ``augment.flow_streams`` must name
    streams of the branches the model uses."""

    section = ""  # the top level: each field is a section

    features: DFRNetFeatures
    model: DFRNetConfig
    train: SupervisedTrainer
    augment: Augment

    def streams(self) -> dict[str, FeatureRequest]:
        """One request per branch of ``model.branches``, by the stream name the model reads."""
        return {STREAM_OF[b]: self.features.request(STREAM_OF[b]) for b in self.model.branches}

    def __post_init__(self) -> None:
        streams = sorted(STREAM_OF[b] for b in self.model.branches)
        flow = self.augment.flow_streams
        if not flow or set(flow) - set(streams):
            raise ValueError(f"augment.flow_streams {list(flow)} must name the flow streams (their u is mirrored "
                             f"on a flip) among the method's streams {streams}")
