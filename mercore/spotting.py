"""Apex spotting with D&C-RoIs (Liong et al. 2015), as DFRNet uses it for SMIC.

1. Three regions of interest from the onset's landmarks: left eye + brow, right eye + brow,
   mouth (:func:`mercore.face.regions`).
2. Per frame (grayscale, Gaussian-blurred with sigma 1 px so that sensor noise does not flip
   codes in flat skin) and region, uniform LBP (P = 8, R = 1, ``skimage.feature.local_binary_pattern``)
   histograms over a ``grid`` of blocks, concatenated (the grid keeps where the texture changed;
   settled here, the papers do not give one).
3. Correlation with the onset's histograms (DFRNet eq. 1):
   ``d = sum(h1 * h2) / sqrt(sum(h1^2) * sum(h2^2))``; the feature difference of a frame is
   ``sum over regions of (1 - d)``.
4. Divide and conquer on that curve after a 5-frame moving average (settled here; single
   noisy frames otherwise win): the current interval is split into two halves, the half
   with the larger summed difference is kept, until it is ``min_span`` frames or fewer, whose
   largest value is the apex. The halving locates the high-difference part of the clip robustly
   against single noisy frames; the final argmax picks the peak inside it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .data.frames import read_image, to_gray

ROI_NAMES = ("left_eye", "right_eye", "mouth")
LBP_P, LBP_R = 8, 1
N_BINS = LBP_P + 2  # uniform patterns + "non-uniform"


BLUR_SIGMA = 1.0
SMOOTH = 5
LANDMARK_BACKENDS = ("auto", "dlib", "canonical")


def _gray_u8(frame: np.ndarray | Path | str) -> np.ndarray:
    img = read_image(frame) if isinstance(frame, (str, Path)) else np.asarray(frame)
    g = to_gray(img) if img.ndim == 3 else img
    if g.dtype == np.uint8:
        g = g.astype(np.float32) / 255.0
    g = cv2.GaussianBlur(g.astype(np.float32), (0, 0), BLUR_SIGMA)
    return np.clip(np.rint(g * 255.0), 0, 255).astype(np.uint8)


def onset_regions(onset: np.ndarray, landmark_backend: str = "auto") -> list[tuple[int, int, int, int]]:
    """The three D&C-RoIs boxes of the onset. ``auto``: dlib when installed and it finds a face, else
    the canonical positions (right for aligned crops)."""
    from .face import DlibUnavailableError, FaceNotFoundError, regions

    if landmark_backend not in LANDMARK_BACKENDS:
        raise ValueError(f"unknown landmark backend {landmark_backend!r}; choose one of {LANDMARK_BACKENDS}")
    rois = None
    if landmark_backend in ("auto", "dlib"):
        try:
            rois = regions(onset, backend="dlib")
        except (DlibUnavailableError, FaceNotFoundError):
            if landmark_backend == "dlib":
                raise
    if rois is None:
        rois = regions(onset.shape, backend="canonical")
    return [rois[n] for n in ROI_NAMES]


def lbp_histograms(gray: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], grid: int = 3) -> list[np.ndarray]:
    """Per box: the concatenated uniform-LBP histograms of its ``grid`` x ``grid`` blocks (counts).

    The codes are computed on each box grown by ``LBP_R`` pixels only: they equal the whole image's
    inside the box, at a quarter of the cost on a raw 640x480 frame.
    """
    from skimage.feature import local_binary_pattern

    h, w = gray.shape
    out = []
    for x0, y0, x1, y1 in boxes:
        cx0, cy0 = max(x0 - LBP_R, 0), max(y0 - LBP_R, 0)
        patch = gray[cy0:min(y1 + LBP_R, h), cx0:min(x1 + LBP_R, w)]
        codes = local_binary_pattern(patch, LBP_P, LBP_R, method="uniform").astype(np.int64)
        roi = codes[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        ys = np.linspace(0, roi.shape[0], grid + 1).astype(int)
        xs = np.linspace(0, roi.shape[1], grid + 1).astype(int)
        hists = [np.bincount(roi[ys[i]:ys[i + 1], xs[j]:xs[j + 1]].ravel(), minlength=N_BINS)[:N_BINS]
                 for i in range(grid) for j in range(grid)]
        out.append(np.concatenate(hists).astype(np.float64))
    return out


def correlation(h1: np.ndarray, h2: np.ndarray) -> float:
    """DFRNet eq. 1: normalised correlation of two histograms (1 = identical shape)."""
    den = float(np.sqrt((h1 * h1).sum() * (h2 * h2).sum()))
    return float((h1 * h2).sum() / den) if den > 0 else 1.0


def feature_difference(frames: Sequence[np.ndarray | Path | str], landmark_backend: str = "auto",
                       grid: int = 3) -> np.ndarray:
    """(T,) sum over the three ROIs of ``1 - d(onset, frame t)``; ``frames[0]`` is the onset."""
    grays = [_gray_u8(f) for f in frames]
    if not grays:
        raise ValueError("no frames to spot an apex in")
    onset = grays[0]
    boxes = onset_regions(onset, landmark_backend)
    ref = lbp_histograms(onset, boxes, grid)
    curve = np.zeros(len(grays))
    for t, g in enumerate(grays[1:], start=1):
        if g.shape != onset.shape:
            raise ValueError(f"frame {t} is {g.shape[1]}x{g.shape[0]}, the onset {onset.shape[1]}x{onset.shape[0]}")
        curve[t] = sum(1.0 - correlation(a, b) for a, b in zip(ref, lbp_histograms(g, boxes, grid)))
    return curve


def divide_and_conquer(curve: np.ndarray, min_span: int = 3) -> int:
    """Index of the apex in a feature-difference curve (see the module docstring)."""
    curve = np.asarray(curve, np.float64)
    if curve.size == 0:
        raise ValueError("empty curve")
    lo, hi = 0, curve.size
    while hi - lo > max(int(min_span), 1):
        mid = (lo + hi) // 2
        if curve[lo:mid].sum() >= curve[mid:hi].sum():
            hi = mid
        else:
            lo = mid
    return lo + int(np.argmax(curve[lo:hi]))


def smooth(curve: np.ndarray, width: int = SMOOTH) -> np.ndarray:
    """Moving average with edge replication (same length)."""
    if width <= 1 or len(curve) < 2:
        return np.asarray(curve, np.float64)
    pad = width // 2
    padded = np.pad(np.asarray(curve, np.float64), (pad, width - 1 - pad), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def spot_apex(frames: Sequence[np.ndarray | Path | str], landmark_backend: str = "auto", grid: int = 3,
              min_span: int = 3) -> int:
    """Position of the apex in ``frames`` (onset first ... offset last) by D&C-RoIs."""
    return divide_and_conquer(smooth(feature_difference(frames, landmark_backend, grid)), min_span)
