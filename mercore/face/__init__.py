"""Face pipeline: 68-point landmarks (dlib or a canonical template), regions of interest, alignment.

dlib is optional (``pip install mercore[dlib]``); the ``canonical`` backend needs nothing and is
the right one for inputs that are already aligned and cropped (the synthetic corpus, cropped
releases, precomputed-flow releases).
"""
from .align import AlignmentError, align_clip, align_image, alignment_transform, apply_alignment
from .landmarks import (
    DlibUnavailableError,
    FaceNotFoundError,
    canonical_landmarks,
    dlib_available,
    dlib_installed,
    five_points,
    landmarks,
    regions,
)

__all__ = [
    "AlignmentError", "DlibUnavailableError", "FaceNotFoundError", "align_clip", "align_image",
    "alignment_transform", "apply_alignment", "canonical_landmarks", "dlib_available", "dlib_installed", "five_points",
    "landmarks", "regions",
]
