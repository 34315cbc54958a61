"""The core's feature extractors: key frames, onset -> apex flow, strain, differences, sequences.

All outputs are float32 and channels-first. Parameters are stored with their defaults filled in
and their types normalised (``size=128`` and ``size=128.0`` hit the same cache entry, as do a
request without ``size`` and one with the default). Derived features ask the
:class:`~mercore.interfaces.FeatureSource` for the features they build on (``optical_strain``
reuses ``optical_flow``), so the expensive flow is computed once per clip and parameters.

Frames are read with :func:`mercore.data.frames.read_image` and resized (square, area filter when
shrinking) to ``size``; flow is computed on the grayscale of the resized frames. ``align="dlib"``
warps every frame with the onset's dlib alignment (:mod:`mercore.face.align`, extra
``mercore[dlib]``) instead of resizing it.

Magnification (``magnification = phi > 0``, MPFNet's AFE): the "magnified apex" is the onset
warped along the onset -> apex flow scaled by ``1 + phi`` (:func:`mercore.features.magnify.magnify`);
the flow of a magnified clip is computed honestly from the onset to that rendered frame
(not just the scaled field), and frame differences use it in place of the apex.

Precomputed-flow releases (``release_flow``): the 28x28 ``u_v_os/*.png`` maps of the public
MEGC2019 release are stored in RGB order R = u, G = v, B = optical strain (as written by an
RGB image writer from an array [u, v, os]); :func:`read_image` returns RGB, so the output is
(u, v, strain). Checked on the 164 SMIC maps in ``../shared/data/megc2019-flow-smic``: the
strain recomputed from the other two channels correlates best with the B channel (r = 0.81 vs
-0.08 / -0.03 for G, R), and with u = R, v = G better than with u = G, v = R (r = 0.87 vs 0.85,
R-as-u better on 83 % of the files).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..data.flow_release import read_release_image
from ..data.frames import read_image, resize, to_gray
from ..interfaces import FeatureExtractor, FeatureSource
from ..sample import Sample
from .flow import STRAIN_FORMULAS, check_backend, compute_flow, minmax_normalise, optical_strain
from .interpolate import get_interpolator, interpolate_sequence
from .magnify import magnify

ALIGN_CHOICES: tuple[str, ...] = ("none", "dlib")
NORMALIZE_CHOICES: tuple[str, ...] = ("none", "minmax")
#: how ``flow_uvs`` reduces from ``source_size``: pool the flow (strain of the pooled flow), or
#: compute u, v and strain at ``source_size`` and pool the three maps (as the releases were made)
POOL_CHOICES: tuple[str, ...] = ("flow", "maps")


# ----------------------------------------------------------------------------- parameter checks
def _size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)) \
            or not np.isfinite(size) or int(size) != size or int(size) < 2:
        raise ValueError(f"size must be an integer >= 2 (pixels of the square output), got {size!r}")
    return int(size)


def _length(length: Any) -> int:
    if isinstance(length, bool) or not isinstance(length, (int, float, np.integer, np.floating)) \
            or not np.isfinite(length) or int(length) != length or int(length) < 2:
        raise ValueError(f"length must be an integer >= 2 (frames from onset to apex), got {length!r}")
    return int(length)


def _magnification(phi: Any) -> float:
    try:
        value = float(phi)
    except (TypeError, ValueError):
        raise ValueError(f"magnification must be a number >= 0, got {phi!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"magnification must be a finite number >= 0, got {phi!r}")
    return value


def _align(align: str) -> str:
    if align not in ALIGN_CHOICES:
        raise ValueError(
            f"unknown align={align!r}; choose one of: {', '.join(ALIGN_CHOICES)} "
            f"('dlib' needs the extra: pip install 'mercore[dlib]')")
    return align


def _strain(formula: str) -> str:
    if formula not in STRAIN_FORMULAS:
        raise ValueError(f"unknown strain {formula!r}; choose one of: {', '.join(STRAIN_FORMULAS)}")
    return formula


def _backend(backend: str) -> str:
    check_backend(backend)
    return backend


# ----------------------------------------------------------------------------- frame access
def _frame_index(sample: Sample, which: str) -> int:
    index = getattr(sample, which)
    if not sample.frames:
        raise ValueError(f"clip {sample.key} has no frames (a precomputed-feature release?); "
                         f"cannot read its {which} frame")
    if index < 0 or index >= len(sample.frames):
        what = "unknown (-1)" if index == -1 else f"{index}, outside the clip's {len(sample.frames)} frames"
        raise ValueError(f"clip {sample.key}: {which} frame position is {what}")
    return index


def load_key_frame(sample: Sample, which: str, size: int, align: str = "none") -> np.ndarray:
    """The clip's ``onset`` / ``apex`` / ``offset`` frame, RGB float32 (size, size, 3) in [0, 1]."""
    _align(align)
    if align == "dlib":
        from ..face.align import aligned_key_frame

        _frame_index(sample, which)
        return aligned_key_frame(sample, which, size, backend="dlib")
    path = sample.frames[_frame_index(sample, which)]
    return resize(read_image(path), size).astype(np.float32)


def pool_maps(maps: np.ndarray, size: int, rescale: bool) -> np.ndarray:
    """(C, T, h, w) -> (C, T, size, size) by area pooling; ``rescale`` multiplies by size / h
    (flow vectors are in pixels of the map they live on)."""
    c, t, h = maps.shape[0], maps.shape[1], maps.shape[2]
    if h == size:
        return maps
    pooled = np.stack([resize(m, size) for m in maps.reshape(c * t, *maps.shape[2:])]).reshape(c, t, size, size)
    return pooled * (size / h) if rescale else pooled


def _chw(image: np.ndarray) -> np.ndarray:
    image = image[..., None] if image.ndim == 2 else image
    return np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32)


def _hwc(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(array, 0, -1))


def _extra(sample: Sample, name: str) -> Path:
    if name not in sample.extras:
        have = ", ".join(sorted(sample.extras)) or "none"
        raise ValueError(f"clip {sample.key} has no extra file {name!r} (it has: {have}); "
                         f"this feature needs a precomputed-flow release")
    path = Path(sample.extras[name])
    if not path.is_file():
        raise FileNotFoundError(f"clip {sample.key}: extra file {name!r} not found: {path}")
    return path


# ----------------------------------------------------------------------------- key frames
class _KeyFrame(FeatureExtractor):
    which: ClassVar[str]

    def __init__(self, size: int = 128, gray: bool = False, align: str = "none") -> None:
        super().__init__(size=_size(size), gray=bool(gray), align=_align(align))

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        p = self._params
        image = load_key_frame(sample, self.which, p["size"], p["align"])
        return _chw(to_gray(image) if p["gray"] else image)


class OnsetFrame(_KeyFrame):
    """The onset frame, (3, size, size) RGB or (1, size, size) gray, in [0, 1]."""

    name = "onset_frame"
    which = "onset"


class ApexFrame(_KeyFrame):
    """The apex frame, (3, size, size) RGB or (1, size, size) gray, in [0, 1]."""

    name = "apex_frame"
    which = "apex"


# ----------------------------------------------------------------------------- flow family
class _FlowParams(FeatureExtractor):
    """The parameters of the onset -> apex flow: ``optical_strain`` takes the same ones as
    ``optical_flow``, so that it asks for exactly the flow its own parameters name."""

    def __init__(self, size: int = 128, backend: str = "tvl1", magnification: float = 0.0,
                 align: str = "none", source_size: int | None = None) -> None:
        params = dict(size=_size(size), backend=_backend(backend), magnification=_magnification(magnification),
                      align=_align(align))
        if source_size is not None and _size(source_size) != params["size"]:
            params["source_size"] = _size(source_size)
        super().__init__(**params)


class OpticalFlow(_FlowParams):
    """Onset -> apex flow on the grayscale resized frames, (2, size, size) = (u, v) in pixels.

    With ``magnification = phi > 0``: the flow from the onset to the magnified apex
    (``magnified_apex``), computed with the same backend (about ``(1 + phi)`` times the plain flow).
    """

    name = "optical_flow"

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        p = self._params
        if "source_size" in p:  # computed at full resolution, pooled: keeps sub-pixel motion
            fine = features.get("optical_flow", sample, **{k: v for k, v in p.items() if k != "source_size"}
                                | {"size": p["source_size"]})
            return pool_maps(fine[:, None], p["size"], rescale=True)[:, 0]
        onset = to_gray(load_key_frame(sample, "onset", p["size"], p["align"]))
        if p["magnification"] > 0:
            target = features.get("magnified_apex", sample, **p)
            target = to_gray(_hwc(target))
        else:
            target = to_gray(load_key_frame(sample, "apex", p["size"], p["align"]))
        return compute_flow(onset, target, p["backend"])

    def mirror_centre(self) -> float:
        return 0.0


class OpticalStrain(_FlowParams):
    """Optical strain magnitude of ``optical_flow`` with the same parameters, (1, size, size);
    ``strain`` names the formula (:data:`~mercore.features.flow.STRAIN_FORMULAS`)."""

    name = "optical_strain"

    def __init__(self, size: int = 128, backend: str = "tvl1", magnification: float = 0.0,
                 align: str = "none", source_size: int | None = None, strain: str = "tensor") -> None:
        super().__init__(size, backend, magnification, align, source_size)
        if _strain(strain) != "tensor":  # the default stays out of the key: cached strain maps remain valid
            self._params["strain"] = strain

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        flow_params = {k: v for k, v in self._params.items() if k != "strain"}
        return optical_strain(features.get("optical_flow", sample, **flow_params),
                              self._params.get("strain", "tensor"))


class FlowUVS(FeatureExtractor):
    """u, v and optical strain stacked, (3, size, size): the "3D optical flow" input of
    STSTNet / HTNet / AHMSA-Net. ``normalize="minmax"`` scales each channel per clip to [0, 1]
    like the public releases (which then store it as 8-bit); ``"none"`` keeps pixels.

    With ``source_size``, ``pool="flow"`` computes the flow there and pools it to ``size`` (the
    strain is that of the pooled flow); ``pool="maps"`` computes u, v and strain at ``source_size``
    and pools the three maps, as the releases' maps were computed on the face and then reduced.
    ``strain`` names the strain formula (:data:`~mercore.features.flow.STRAIN_FORMULAS`).
    """

    name = "flow_uvs"

    def __init__(self, size: int = 128, backend: str = "tvl1", normalize: str = "none",
                 magnification: float = 0.0, align: str = "none", source_size: int | None = None,
                 pool: str = "flow", strain: str = "tensor") -> None:
        if normalize not in NORMALIZE_CHOICES:
            raise ValueError(f"unknown normalize {normalize!r}; choose one of: {', '.join(NORMALIZE_CHOICES)}")
        if pool not in POOL_CHOICES:
            raise ValueError(f"unknown pool {pool!r}; choose one of: {', '.join(POOL_CHOICES)}")
        params = dict(size=_size(size), backend=_backend(backend), normalize=normalize,
                      magnification=_magnification(magnification), align=_align(align))
        if source_size is not None and _size(source_size) != params["size"]:
            params["source_size"] = _size(source_size)
            if pool != "flow":  # defaults stay out of the key: cached maps remain valid
                params["pool"] = pool
        if _strain(strain) != "tensor":
            params["strain"] = strain
        super().__init__(**params)

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        p = dict(self._params)
        normalize = p.pop("normalize")
        if p.pop("pool", "flow") == "maps":
            size = p["size"]
            fine = features.get("flow_uvs", sample, **{**p, "size": p.pop("source_size"), "normalize": "none"})
            uvs = pool_maps(fine[:, None], size, rescale=False)[:, 0]
            uvs[:2] *= size / fine.shape[-1]  # u, v in pixels of the pooled map; strain has no unit
        else:
            flow = features.get("optical_flow", sample, **{k: v for k, v in p.items() if k != "strain"})
            strain = features.get("optical_strain", sample, **p)
            uvs = np.concatenate([flow, strain]).astype(np.float32)
        return minmax_normalise(uvs) if normalize == "minmax" else uvs

    def mirror_centre(self) -> float:
        """Per-clip min-max scaling turns ``-u`` into ``1 - u``: the centre is 0.5 in [0, 1]."""
        return 0.5 if self._params["normalize"] == "minmax" else 0.0


class MagnifiedApex(FeatureExtractor):
    """The onset warped along ``(1 + magnification)`` times the onset -> apex flow, (3, size, size).

    ``magnification = 0`` returns the real apex frame (not the warped onset)."""

    name = "magnified_apex"

    def __init__(self, size: int = 128, backend: str = "tvl1", magnification: float = 1.0,
                 align: str = "none") -> None:
        super().__init__(size=_size(size), backend=_backend(backend),
                         magnification=_magnification(magnification), align=_align(align))

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        p = self._params
        if p["magnification"] == 0:
            return _chw(load_key_frame(sample, "apex", p["size"], p["align"]))
        onset = load_key_frame(sample, "onset", p["size"], p["align"])
        flow = features.get("optical_flow", sample, **{**p, "magnification": 0.0})
        return _chw(magnify(onset, flow, p["magnification"]))


class FrameDiff(FeatureExtractor):
    """``|apex - onset|``, (3 | 1, size, size); the apex is magnified when ``magnification > 0``
    (then ``backend`` is the flow used for magnification; it does not matter otherwise)."""

    name = "frame_diff"

    def __init__(self, size: int = 128, gray: bool = False, magnification: float = 0.0,
                 backend: str = "tvl1", align: str = "none") -> None:
        super().__init__(size=_size(size), gray=bool(gray), magnification=_magnification(magnification),
                         backend=_backend(backend), align=_align(align))

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        p = self._params
        onset = load_key_frame(sample, "onset", p["size"], p["align"])
        if p["magnification"] > 0:
            apex = _hwc(features.get("magnified_apex", sample, size=p["size"], backend=p["backend"],
                                     magnification=p["magnification"], align=p["align"]))
        else:
            apex = load_key_frame(sample, "apex", p["size"], p["align"])
        if p["gray"]:
            onset, apex = to_gray(onset), to_gray(apex)
        return _chw(np.abs(apex - onset))


# ----------------------------------------------------------------------------- sequences (MPFNet)
class _SequenceBase(FeatureExtractor):
    """``source_size`` (flow and difference extractors): compute at ``source_size``, then
    area-pool the result to ``size`` (flow vectors rescaled to the new pixel size). Sub-pixel
    facial motion survives that, where computing flow on tiny frames loses it; small CPU models
    use it. ``interpolated_sequence`` itself is always at ``size``."""

    def __init__(self, size: int = 128, length: int = 11, backend: str = "tvl1", magnification: float = 0.0,
                 interpolator: str = "flow", align: str = "none", source_size: int | None = None) -> None:
        get_interpolator(interpolator)  # validates the name
        params = dict(size=_size(size), length=_length(length), backend=_backend(backend),
                      magnification=_magnification(magnification), interpolator=interpolator, align=_align(align))
        if source_size is not None and _size(source_size) != params["size"]:
            params["source_size"] = _size(source_size)
        super().__init__(**params)

    #: parameters of this extractor that the interpolated sequence it reads does not take
    _own: ClassVar[tuple[str, ...]] = ("source_size",)

    def _source_sequence(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        """The interpolated sequence at the size the maps are computed at."""
        p = {k: v for k, v in self._params.items() if k not in self._own}
        p["size"] = self._params.get("source_size", p["size"])
        return features.get("interpolated_sequence", sample, **p)


class InterpolatedSequence(_SequenceBase):
    """``length`` RGB frames from the onset to the (magnified) apex, (length, 3, size, size).

    The in-between frames come from ``interpolator`` (default ``"flow"``:
    :class:`~mercore.features.interpolate.FlowInterpolator` along ``optical_flow`` with the same
    parameters, i.e. the flow onset -> magnified apex when ``magnification > 0``)."""

    name = "interpolated_sequence"

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        p = self._params
        common = dict(size=p["size"], backend=p["backend"], magnification=p["magnification"], align=p["align"])
        onset = load_key_frame(sample, "onset", p["size"], p["align"])
        apex = _hwc(features.get("magnified_apex", sample, **common))
        flow = features.get("optical_flow", sample, **common)
        frames = interpolate_sequence(onset, apex, p["length"], flow, get_interpolator(p["interpolator"]))
        return np.ascontiguousarray(np.moveaxis(frames, -1, 1), dtype=np.float32)


class SequenceFlow(_SequenceBase):
    """Flow between consecutive frames of ``interpolated_sequence``, computed with ``backend`` on
    their grayscale, (2, length - 1, size, size) = (u, v) x time."""

    name = "sequence_flow"

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        frames = self._source_sequence(sample, features)
        gray = [to_gray(_hwc(f)) for f in frames]
        flows = np.stack([compute_flow(a, b, self._params["backend"]) for a, b in zip(gray[:-1], gray[1:])], axis=1)
        return np.ascontiguousarray(pool_maps(flows, self._params["size"], rescale=True), dtype=np.float32)

    def mirror_centre(self) -> float:
        return 0.0


class SequenceDiff(_SequenceBase):
    """Differences of consecutive frames of ``interpolated_sequence``, (3, length - 1, size, size):
    signed, ``frame[t + 1] - frame[t]``, or with ``absolute`` ``|frame[t + 1] - frame[t]|``
    (MPFNet's eq. 3; taken before pooling to ``size``)."""

    name = "sequence_diff"

    def __init__(self, size: int = 128, length: int = 11, backend: str = "tvl1", magnification: float = 0.0,
                 interpolator: str = "flow", align: str = "none", source_size: int | None = None,
                 absolute: bool = False) -> None:
        super().__init__(size, length, backend, magnification, interpolator, align, source_size)
        self._params["absolute"] = bool(absolute)

    _own = ("source_size", "absolute")

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        frames = self._source_sequence(sample, features)
        diffs = np.moveaxis(frames[1:] - frames[:-1], 1, 0)  # (3, length - 1, H, W)
        if self._params["absolute"]:
            diffs = np.abs(diffs)
        return np.ascontiguousarray(pool_maps(diffs, self._params["size"], rescale=False), dtype=np.float32)


# ----------------------------------------------------------------------------- releases
class ReleaseFlow(FeatureExtractor):
    """The release's normalised flow map ``sample.extras["flow_image"]``, (3, size, size) in
    [0, 1], channels (u, v, strain). The file is RGB = (u, v, os); see the module docstring."""

    name = "release_flow"

    def __init__(self, size: int = 28) -> None:
        super().__init__(size=_size(size))

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        image = read_release_image(_extra(sample, "flow_image"), "flow_image")
        return _chw(resize(image, self._params["size"]))

    def mirror_centre(self) -> float:
        """Each channel is min-max scaled per map: the mirror of ``u`` is ``1 - u``."""
        return 0.5


class ReleaseApex(FeatureExtractor):
    """The release's apex crop ``sample.extras["apex_image"]``, (3 | 1, size, size) in [0, 1]."""

    name = "release_apex"

    def __init__(self, size: int = 224, gray: bool = False) -> None:
        super().__init__(size=_size(size), gray=bool(gray))

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        image = resize(read_release_image(_extra(sample, "apex_image"), "apex_image"), self._params["size"])
        return _chw(to_gray(image) if self._params["gray"] else image)


BUILTIN_EXTRACTORS: tuple[type[FeatureExtractor], ...] = (
    OnsetFrame, ApexFrame, OpticalFlow, OpticalStrain, FlowUVS, FrameDiff, MagnifiedApex,
    InterpolatedSequence, SequenceFlow, SequenceDiff, ReleaseFlow, ReleaseApex,
)
