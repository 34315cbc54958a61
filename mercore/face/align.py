"""Face alignment and cropping: level the eyes, crop from MoExt's landmarks, resize.

The transform is a similarity (rotation about the eye midpoint so the eye centres are level, then
the square crop of :func:`mercore.face.landmarks.crop_box` scaled to ``size``). For a clip, the
transform found on the onset frame is applied to every frame: re-aligning each frame would absorb
the very motion a micro-expression consists of.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..data.frames import read_image
from ..sample import Sample
from .landmarks import LEFT_EYE, RIGHT_EYE, crop_box, landmarks


class AlignmentError(ValueError):
    """A frame could not be aligned (no face, degenerate landmarks); the message names the frame."""


def alignment_transform(image: np.ndarray, size: int, backend: str = "dlib",
                        shape68: np.ndarray | None = None) -> np.ndarray:
    """(2, 3) affine matrix mapping ``image`` pixels to the aligned ``size`` x ``size`` crop."""
    pts = landmarks(image, backend) if shape68 is None else np.asarray(shape68, np.float64)
    le, re_ = pts[list(LEFT_EYE)].mean(0), pts[list(RIGHT_EYE)].mean(0)
    angle = math.degrees(math.atan2(re_[1] - le[1], re_[0] - le[0]))
    centre = (float((le[0] + re_[0]) / 2), float((le[1] + re_[1]) / 2))
    rot = cv2.getRotationMatrix2D(centre, angle, 1.0)  # (2, 3): levels the eye line
    level = pts @ rot[:, :2].T + rot[:, 2]
    x0, y0, x1, _ = crop_box(level)
    s = size / (x1 - x0)
    crop = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]])
    return np.hstack([crop[:, :2] @ rot[:, :2], (crop[:, :2] @ rot[:, 2] + crop[:, 2])[:, None]])


def apply_alignment(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` with ``matrix`` into a ``size`` x ``size`` crop (edges replicated)."""
    return cv2.warpAffine(image, np.asarray(matrix, np.float64), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def align_image(image: np.ndarray, size: int, backend: str = "dlib") -> np.ndarray:
    """One image aligned with its own landmarks."""
    return apply_alignment(image, alignment_transform(image, size, backend), size)


def align_clip(frames: Sequence[np.ndarray], size: int, backend: str = "dlib", reference: int = 0) -> list[np.ndarray]:
    """Every frame warped with the transform of ``frames[reference]`` (the onset)."""
    matrix = alignment_transform(frames[reference], size, backend)
    return [apply_alignment(f, matrix, size) for f in frames]


_TRANSFORMS: OrderedDict[tuple[str, int, str], np.ndarray] = OrderedDict()
_MAX_CACHED = 4096


def onset_transform(sample: Sample, size: int, backend: str = "dlib") -> np.ndarray:
    """The alignment transform of a clip's onset frame (memoised per onset file, size and backend)."""
    if not 0 <= sample.onset < len(sample.frames):
        raise AlignmentError(f"clip {sample.key}: no onset frame to align on")
    path = Path(sample.frames[sample.onset])
    key = (str(path), int(size), backend)
    if key not in _TRANSFORMS:
        try:
            _TRANSFORMS[key] = alignment_transform(read_image(path), size, backend)
        except ValueError as exc:
            raise AlignmentError(f"clip {sample.key}: cannot align on onset frame {path}: {exc}") from None
        if len(_TRANSFORMS) > _MAX_CACHED:
            _TRANSFORMS.popitem(last=False)
    return _TRANSFORMS[key]


def aligned_key_frame(sample: Sample, which: str, size: int, backend: str = "dlib") -> np.ndarray:
    """The clip's ``onset``/``apex``/``offset`` frame warped with the onset's alignment, (size, size, 3)."""
    index = getattr(sample, which)
    if not 0 <= index < len(sample.frames):
        raise AlignmentError(f"clip {sample.key}: {which} frame position {index} is outside the clip")
    matrix = onset_transform(sample, size, backend)
    return apply_alignment(read_image(sample.frames[index]), matrix, size).astype(np.float32)
