"""Landmark-centred flow regions: the region inputs of HTNet and AHMSA-Net.

Both methods take the normalised u/v/strain map of the whole face, find five facial landmarks
(left eye, right eye, nose, left and right mouth corner; image left/right), crop square blocks
around some of them and recombine the blocks into one small map. ``roi_flow`` does that for any
source map size ``S`` (the block side is ``S / 2``, the block centres are clamped to
``[S / 4, 3 S / 4]`` so blocks stay inside; at ``S = 28`` that is HTNet's 14x14 blocks and its
clamp to [7, 21]):

- ``htnet4`` (HTNet, ``main_HTNet.py``): a 2x2 grid, left eye | right eye over
  left mouth corner | right mouth corner, (3, S, S).
- ``ahmsa5`` (AHMSA-Net's five regions; the paper says only "crop and recombine", the
  arrangement is ours): three rows stacked, left eye | right eye, then a 2B-wide band of height
  B around the nose (B = S / 2: the full width of the map, so no padding is needed and the
  cheeks beside the nose stay in), then left mouth corner | right mouth corner. That is a
  (3, 3B, 2B) canvas, resized to (3, size, size) with the area filter (rows shrink by 2/3 more
  than columns). Left stays left: no region is mirrored.

Coordinates: landmarks are pixel ``(x, y)``; x selects columns and y rows. HTNet's public code
indexes ``flow[x - 7 : x + 7, y - 7 : y + 7]`` (rows by x), i.e. its crops are transposed
about the diagonal; we crop where the paper says (around the landmark). See docs/methods/htnet.md.

Landmarks (``landmarks``): ``canonical`` are fixed points for aligned face crops: HTNet's own
fallback points (its code uses them when MTCNN finds no face on the 28x28 apex), as proportions
of the crop. They fall on the eyes, nose tip and mouth corners of the SMIC crops of the public
precomputed-flow release and inside the eye/mouth halves of the synthetic faces. They are NOT
``mercore.face``'s ``canonical`` 68-point template, which is for tighter crops (eyes at 25 % of
the height, the release's at 39 %). Any other value is a ``mercore.face.five_points`` detector
backend (``dlib``), run on the apex frame at 224x224 and scaled to the map. ``auto`` is ``dlib`` when
the frames are aligned with dlib (``align: dlib``: raw video, as the papers detect landmarks on it)
and ``canonical`` otherwise (aligned crops, releases).

``align`` (clips only): ``dlib`` computes the flow on, and detects the landmarks in, frames aligned
and cropped with the onset's transform (:mod:`mercore.face.align`), as the papers preprocess raw
video; ``none`` uses the whole frames resized.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..data.frames import resize
from ..interfaces import FeatureExtractor, FeatureSource
from ..sample import Sample
from .flow import check_backend

FIVE_POINTS: tuple[str, ...] = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
#: HTNet's fallback landmarks on its 28x28 maps (main_HTNet.py), as (x, y) proportions of the crop.
CANONICAL_FIVE_POINTS: dict[str, tuple[float, float]] = {
    "left_eye": (9.528073 / 28, 11.062551 / 28),
    "right_eye": (21.396168 / 28, 10.919773 / 28),
    "nose": (15.380184 / 28, 17.380562 / 28),
    "left_mouth": (10.255435 / 28, 22.121233 / 28),
    "right_mouth": (20.583706 / 28, 22.25584 / 28),
}
LAYOUTS: tuple[str, ...] = ("htnet4", "ahmsa5")
DETECT_SIZE = 224  # side of the apex frame a landmark detector sees
SOURCES: tuple[str, ...] = ("clips", "release")

Points = Mapping[str, tuple[float, float]]


def canonical_five_points(size: int | tuple[int, int]) -> dict[str, tuple[float, float]]:
    """The fixed landmarks (HTNet's) of an aligned face crop of ``size`` (square int or (H, W)), pixel (x, y)."""
    h, w = (size, size) if isinstance(size, int) else size
    return {k: (px * w, py * h) for k, (px, py) in CANONICAL_FIVE_POINTS.items()}


def crop_block(uvs: np.ndarray, centre: tuple[float, float], height: int, width: int) -> np.ndarray:
    """The (C, height, width) block of a (C, S, S) map around pixel ``centre = (x, y)``.

    The centre is clamped so the block stays inside and then truncated to an integer (as HTNet:
    clamp to [7, 21] on 28x28, then ``astype(int)``); the block spans ``[c - half, c + half)``.
    """
    _, rows, cols = uvs.shape
    if height > rows or width > cols or height % 2 or width % 2:
        raise ValueError(f"block {height}x{width} must be even-sided and fit the {rows}x{cols} map")
    x = min(max(float(centre[0]), width / 2), cols - width / 2)
    y = min(max(float(centre[1]), height / 2), rows - height / 2)
    c0, r0 = int(math.floor(x)) - width // 2, int(math.floor(y)) - height // 2
    return uvs[:, r0:r0 + height, c0:c0 + width]


def htnet4(uvs: np.ndarray, points: Points) -> np.ndarray:
    """HTNet's input: (C, S, S) -> (C, S, S), blocks of S/2 around eyes (top) and mouth corners (bottom)."""
    b = _block_side(uvs)
    blocks = {k: crop_block(uvs, points[k], b, b) for k in ("left_eye", "right_eye", "left_mouth", "right_mouth")}
    top = np.concatenate([blocks["left_eye"], blocks["right_eye"]], axis=2)  # (C, B, 2B)
    bottom = np.concatenate([blocks["left_mouth"], blocks["right_mouth"]], axis=2)  # (C, B, 2B)
    return np.concatenate([top, bottom], axis=1)  # (C, 2B, 2B)


def ahmsa5(uvs: np.ndarray, points: Points) -> np.ndarray:
    """AHMSA-Net's five regions: (C, S, S) -> (C, 3B, 2B) with B = S/2, rows eyes / nose band / mouth."""
    b = _block_side(uvs)
    eyes = np.concatenate([crop_block(uvs, points["left_eye"], b, b), crop_block(uvs, points["right_eye"], b, b)], axis=2)
    nose = crop_block(uvs, points["nose"], b, 2 * b)  # (C, B, 2B)
    mouth = np.concatenate([crop_block(uvs, points["left_mouth"], b, b),
                            crop_block(uvs, points["right_mouth"], b, b)], axis=2)
    return np.concatenate([eyes, nose, mouth], axis=1)  # (C, 3B, 2B)


def recombine(uvs: np.ndarray, points: Points, layout: str = "htnet4", size: int | None = None) -> np.ndarray:
    """Crop and recombine the regions of ``layout`` from a (C, S, S) map; resize to (C, size, size)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    missing = [k for k in FIVE_POINTS if k not in points]
    if missing:
        raise ValueError(f"landmarks lack {missing}; need {list(FIVE_POINTS)}")
    out = htnet4(uvs, points) if layout == "htnet4" else ahmsa5(uvs, points)
    size = size or uvs.shape[-1]
    if out.shape[1:] != (size, size):
        out = np.moveaxis(resize(np.ascontiguousarray(np.moveaxis(out, 0, -1)), size), -1, 0)
    return np.ascontiguousarray(out, dtype=np.float32)


def _block_side(uvs: np.ndarray) -> int:
    if uvs.ndim != 3 or uvs.shape[1] != uvs.shape[2] or uvs.shape[1] % 4:
        raise ValueError(f"expected a square (C, S, S) map with S divisible by 4, got {uvs.shape}")
    return uvs.shape[1] // 2


class RoiFlow(FeatureExtractor):
    """Landmark-centred regions of the whole-face u/v/strain map, recombined: (3, size, size).

    Args:
        layout: ``htnet4`` (HTNet) or ``ahmsa5`` (AHMSA-Net); see the module docstring.
        source: ``clips``: ``flow_uvs`` (onset -> apex, min-max normalised per clip like the
            releases) computed at ``source_size``; ``release``: the release's map
            (``release_flow``) resized to ``source_size``.
        source_size: side of the whole-face map the blocks are cut from (divisible by 4). At 28
            the blocks are HTNet's 14x14; a larger size computes the flow at a finer scale and
            crops the same face regions before resizing to ``size``.
        size: side of the output map.
        landmarks: ``canonical`` (HTNet's fixed points for aligned crops), a ``mercore.face``
            detector backend (``dlib``), run on the 224x224 apex frame, or ``auto`` (``dlib`` with
            ``align: dlib``, else ``canonical``).
        backend: optical flow backend for ``source="clips"``.
        align: ``none`` or ``dlib``, face alignment of the clip's frames (``source="clips"`` only).
    """

    name = "roi_flow"
    version = "1"

    def __init__(self, layout: str = "htnet4", source: str = "clips", source_size: int = 28, size: int = 28,
                 landmarks: str = "canonical", backend: str = "tvl1", align: str = "none") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
        for key, value in (("source_size", source_size), ("size", size)):
            if isinstance(value, bool) or int(value) != value or int(value) < 4:
                raise ValueError(f"{key} must be an integer >= 4, got {value!r}")
        if int(source_size) % 4:
            raise ValueError(f"source_size must be divisible by 4 (blocks of source_size / 2 centred on a pixel), "
                             f"got {source_size}")
        if align not in ("none", "dlib"):
            raise ValueError(f"unknown align {align!r}; choose none or dlib")
        from ..face.landmarks import BACKENDS as LANDMARK_BACKENDS

        if landmarks not in ("auto", *LANDMARK_BACKENDS):
            raise ValueError(f"unknown landmarks {landmarks!r}; choose one of: auto, {', '.join(LANDMARK_BACKENDS)}")
        check_backend(backend)  # read only for clips, but a typo must not pass silently
        if source == "release" and align != "none":
            raise ValueError("align applies to clips; a release's maps are already cropped (use align none)")
        super().__init__(layout=layout, source=source, source_size=int(source_size), size=int(size),
                         landmarks=str(landmarks), backend=str(backend), align=align)

    def extract(self, sample: Sample, features: FeatureSource) -> np.ndarray:
        p = self._params
        s = p["source_size"]
        if p["source"] == "clips":
            uvs = features.get("flow_uvs", sample, size=s, backend=p["backend"], normalize="minmax", align=p["align"])
        else:
            uvs = features.get("release_flow", sample, size=s)
        return recombine(uvs, self._points(sample, features), p["layout"], p["size"])

    def _points(self, sample: Sample, features: FeatureSource) -> dict[str, tuple[float, float]]:
        """The five landmarks in pixels of the ``source_size`` map."""
        backend, s = self._params["landmarks"], self._params["source_size"]
        if backend == "auto":
            backend = "dlib" if self._params["align"] == "dlib" else "canonical"
        if backend == "canonical":
            return canonical_five_points(s)
        from ..face import five_points

        if self._params["source"] == "clips":
            image = features.get("apex_frame", sample, size=DETECT_SIZE, align=self._params["align"])
        else:
            image = features.get("release_apex", sample, size=DETECT_SIZE)
        image = np.moveaxis(image, 0, -1)  # (224, 224, 3) in [0, 1]
        scale = s / DETECT_SIZE
        return {k: (x * scale, y * scale) for k, (x, y) in five_points(image, backend=backend).items()}


REGION_EXTRACTORS: tuple[type[FeatureExtractor], ...] = (RoiFlow,)
