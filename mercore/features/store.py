"""Computes features through the registry and the on-disk cache, once per clip and parameters."""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..interfaces import FeatureExtractor, FeatureRequest, FeatureSource
from ..sample import Sample
from .cache import FeatureCache, sample_fingerprint


class FeatureError(RuntimeError):
    """Feature extraction failed for a clip; the message names the clip and the extractor."""


class FeatureStore(FeatureSource):
    """Resolves extractor names to classes and caches every result on disk.

    ``extractors`` maps names to classes (picklable, so worker processes can rebuild the store).
    """

    def __init__(self, extractors: Mapping[str, type[FeatureExtractor]], cache_dir: Path | str | None) -> None:
        self.extractors = dict(extractors)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.cache = FeatureCache(Path(cache_dir) / "features" if cache_dir is not None else None)
        self._fingerprints: dict[str, str] = {}

    def fingerprint(self, sample: Sample) -> str:
        if sample.key not in self._fingerprints:
            self._fingerprints[sample.key] = sample_fingerprint(sample)
        return self._fingerprints[sample.key]

    def lookup(self, name: str) -> type[FeatureExtractor]:
        if name not in self.extractors:
            raise FeatureError(f"unknown feature extractor {name!r}; choose one of: {', '.join(sorted(self.extractors))}")
        return self.extractors[name]

    def mirror_centre(self, request: FeatureRequest) -> float | None:
        """The u value a left-right mirror keeps in this stream (``FeatureExtractor.mirror_centre``)."""
        return self.lookup(request.extractor)(**dict(request.params)).mirror_centre()

    def get(self, name: str, sample: Sample, **params: Any) -> np.ndarray:
        try:
            extractor = self.lookup(name)(**params)
        except (TypeError, ValueError) as exc:  # an unknown or bad parameter in the config
            raise FeatureError(f"feature extractor {name!r} rejected its parameters {params}: {exc}") from exc
        key = self.cache.key(name, extractor.version, extractor.params(), self.fingerprint(sample))
        array = self.cache.load(name, key)
        if array is None:
            try:
                array = np.ascontiguousarray(extractor.extract(sample, self))
            except FeatureError:
                raise
            except Exception as exc:
                raise FeatureError(f"{name} failed on clip {sample.key}: {type(exc).__name__}: {exc}") from exc
            self.cache.store(name, key, array)
        return array

    def stack(self, request: FeatureRequest, samples: Sequence[Sample], *, progress: bool = False,
              desc: str | None = None) -> torch.Tensor:
        """One stream for many clips, stacked into a float32 tensor with samples first."""
        arrays = [self.get(request.extractor, s, **dict(request.params))
                  for s in tqdm(samples, desc=desc or request.extractor, disable=not progress, leave=False)]
        return torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False))


def _warm_one(args: tuple[dict[str, type[FeatureExtractor]], Path, list[tuple[str, dict[str, Any]]], Sample]) -> str | None:
    extractors, cache_dir, requests, sample = args
    store = FeatureStore(extractors, cache_dir)
    try:
        for name, params in requests:
            store.get(name, sample, **params)
    except FeatureError as exc:
        return str(exc)
    return None


def build_inputs(store: FeatureStore, requests: Mapping[str, FeatureRequest], samples: Sequence[Sample], *,
                 workers: int = 0, progress: bool = True) -> dict[str, torch.Tensor]:
    """All streams of a method for all clips. With ``workers`` > 0 the cache is first filled in
    worker processes (flow is the slow part), then read back in order."""
    if workers > 0 and store.cache_dir is not None:
        job = [(n.extractor, dict(n.params)) for n in requests.values()]
        args = [(store.extractors, store.cache_dir, job, s) for s in samples]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            try:
                errors = [e for e in tqdm(pool.map(_warm_one, args, chunksize=4), total=len(args),
                                          desc="features", disable=not progress) if e]
            except BaseException:  # e.g. Ctrl-C: drop the clips not started, wait only for those running
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        if errors:
            raise FeatureError(f"{len(errors)} clips failed; first: {errors[0]}")
    return {name: store.stack(req, samples, progress=progress and workers == 0, desc=f"feature {name}")
            for name, req in requests.items()}
