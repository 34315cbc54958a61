"""D&C-RoIs apex spotting: eq. 1, the divide-and-conquer search, and clips whose apex is known."""
from __future__ import annotations

import cv2
import numpy as np

from mercore.data.synthetic import ClipSpec, action_field, make_face, profile
from mercore.spotting import N_BINS, correlation, divide_and_conquer, lbp_histograms, smooth, spot_apex


def test_correlation_and_search() -> None:
    h = np.array([1.0, 2.0, 3.0])
    assert correlation(h, 2 * h) == 1.0 and correlation(h, np.array([3.0, 0.0, 0.0])) < 0.3
    curve = np.array([0, 0.1, 0.2, 0.1, 0.3, 0.9, 1.0, 0.7, 0.2, 0.1, 0.0, 0.05])
    assert divide_and_conquer(curve) == 6
    assert divide_and_conquer(np.array([5.0])) == 0
    assert np.allclose(smooth(np.ones(7)), 1.0) and len(smooth(np.arange(4.0))) == 4


def test_box_histograms_equal_those_of_the_whole_image_codes() -> None:
    """LBP is computed per box plus a margin for speed: boxes at the borders and inside must count
    exactly the codes of the whole image."""
    from skimage.feature import local_binary_pattern

    gray = np.random.default_rng(0).integers(0, 256, (40, 50)).astype(np.uint8)
    codes = local_binary_pattern(gray, 8, 1, method="uniform").astype(np.int64)
    boxes = [(0, 0, 7, 9), (10, 12, 31, 29), (43, 30, 50, 40)]
    for (x0, y0, x1, y1), hist in zip(boxes, lbp_histograms(gray, boxes, grid=1)):
        assert np.array_equal(hist, np.bincount(codes[y0:y1, x0:x1].ravel(), minlength=N_BINS))


def _clean_clip(i: int, apex: int, au: str, n: int = 32, size: int = 96) -> list[np.ndarray]:
    """A synthetic face moved only by its action (no head motion, noise or blinks): onset 0, offset n-1."""
    face = make_face(i, size, seed=3)
    spec = ClipSpec(subject=face.subject, clip=f"c{i}", emotion="x", n_frames=n, onset=0, apex=apex, offset=n - 1,
                    start_number=1, actions=[(au, 1.0, "b")], peak_px=3.0, seed=100 + i)
    fld, amp = action_field(face, spec), profile(spec)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return [cv2.remap(face.neutral, xs - a * fld[..., 0], ys - a * fld[..., 1], cv2.INTER_CUBIC,
                      borderMode=cv2.BORDER_REFLECT101) for a in amp.astype(np.float32)]


def test_spots_known_apex() -> None:
    """With the action as the only motion, the spotted apex is on average within 3 frames (of 32).

    (On the default synthetic corpus, whose clips add head jitter, blinks, flicker and noise, the
    error is much larger: see docs/datasets.md.)"""
    errors = [abs(spot_apex(_clean_clip(i, apex, au), landmark_backend="canonical") - apex)
              for i, (apex, au) in enumerate([(9, "12"), (14, "15"), (20, "26"), (24, "12")])]
    assert np.mean(errors) <= 3 and max(errors) <= 6, errors
