"""Input streams declared in a method's YAML, so that a plugin need not write ``features()``.

The ``features`` section names, for each batch key, one extractor per source of the data; the
core picks the one of ``features.source`` and adds the settings every stream shares, so no
plugin threads them by hand::

    features:
      source: clips          # clips: computed from the frames | release: a precomputed-flow release's maps
      size: 28               # added to every stream's params (null: leave them alone)
      align: auto            # face alignment, added to the params of the clips streams only
      streams:
        flow:                # the batch key the model reads
          clips: {extractor: flow_uvs, params: {backend: tvl1, normalize: minmax}}
          release: {extractor: release_flow, params: {}}

A stream's own ``size`` or ``align`` wins over the shared one; a param set to null is left out,
so a profile can switch off a param the defaults set (the extractor's own default applies).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from .interfaces import FeatureRequest
from .settings import PositiveInt, Settings


@dataclass(frozen=True, kw_only=True)
class StreamSource(Settings):
    """One stream from one source: a registered extractor and its parameters (checked by it)."""

    section = "features.streams"

    extractor: str
    params: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class DeclaredFeatures(Settings):
    """The ``features`` section of a method whose streams are declared (see the module docstring)."""

    section = "features"

    source: Literal["clips", "release"]
    size: PositiveInt | None
    align: Literal["auto", "dlib", "none"]
    streams: Mapping[str, Mapping[str, StreamSource]]

    def __post_init__(self) -> None:
        if not self.streams:
            raise ValueError("'streams' declares no stream; name at least one batch key")
        for name, sources in self.streams.items():
            if self.source not in sources:
                raise ValueError(f"stream {name!r} has no {self.source!r} entry (features.source picks it); "
                                 f"it declares: {', '.join(sources) or 'none'}")


def declared_requests(section: Mapping[str, Any]) -> dict[str, FeatureRequest]:
    """The requests of the ``features`` section: each stream's extractor for ``source``, with
    ``size`` and (for clips) ``align`` added unless the stream sets them, and null params left out."""
    feats = DeclaredFeatures.from_config(section)
    shared: dict[str, Any] = {"size": feats.size}
    if feats.source == "clips":
        shared["align"] = feats.align
    out = {}
    for name, sources in feats.streams.items():
        chosen = sources[feats.source]
        params = {**shared, **chosen.params}
        out[name] = FeatureRequest(chosen.extractor, {k: v for k, v in params.items() if v is not None})
    return out
