"""Reading frames: one place that turns an image file into a float RGB array or a clear error.

OpenCV is imported inside the functions that use it: loading the plugin registry (``mer plugins``,
``mer datasets``) imports this module and should not pay for it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class CorruptFrameError(ValueError):
    """An image file that is missing, empty or not decodable; the message names it."""


def read_image(path: Path | str) -> np.ndarray:
    """RGB float32 image in [0, 1], shape (H, W, 3)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise CorruptFrameError(f"frame file not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise CorruptFrameError(f"cannot decode image (corrupt or not an image): {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize an (H, W[, C]) array to ``size`` (square int or (H, W)); area filter when shrinking."""
    import cv2

    h, w = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (h, w):
        return image
    shrink = h < image.shape[0] or w < image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W) luminance."""
    import cv2

    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def write_image(path: Path | str, rgb: np.ndarray) -> None:
    """Write an RGB float [0, 1] or uint8 image; the format follows the suffix (jpg, png, bmp)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = rgb if rgb.dtype == np.uint8 else np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(path.suffix or ".png", arr)
    if not ok:
        raise OSError(f"cannot encode image for {path}")
    tmp = path.with_name(f".{path.name}.tmp")
    buf.tofile(tmp)
    tmp.replace(path)
