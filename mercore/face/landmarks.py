"""68-point facial landmarks (dlib's iBUG layout), five key points and landmark regions.

Backends:

* ``dlib``: dlib's HOG frontal face detector (no model file needed) and the 68-point shape
  predictor shipped in the ``face-recognition-models`` package, whose ``.dat`` file is located with
  ``importlib.util.find_spec`` without importing that package (its ``__init__`` needs
  ``pkg_resources``). Install with ``pip install mercore[dlib]``.
* ``canonical``: fixed positions for a face that is already aligned and cropped the way
  :mod:`mercore.face.align` crops: the mean 68-point shape (OpenFace's dlib mean shape) put through
  the same crop rule and scaled to the image. No detection, so it also accepts a bare ``(H, W)``.

Point indices are 0-based here (dlib's ``part(i)``); papers number them from 1 (MoExt's 8, 9, 25,
40, 43 are indices 7, 8, 24, 39, 42). "left"/"right" are image left/right (the subject's right eye is
the image-left eye), as in dlib's and MTCNN's five-point conventions.
"""
from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("dlib", "canonical")
INSTALL_HINT = "pip install 'mercore[dlib]'  (i.e. pip install dlib-bin face-recognition-models)"

#: Mean 68-point shape (x, y) in the unit frame of OpenFace's ``align_dlib.TEMPLATE`` (LFW mean of
#: dlib landmarks); only its geometry is used, after :func:`crop_box`.
TEMPLATE = np.array([
    (0.0792396913815, 0.339223741112), (0.0829219487236, 0.456955367943), (0.0967927109165, 0.575648016728),
    (0.122141515615, 0.691921601066), (0.168687863544, 0.800341263616), (0.239789390707, 0.895732504778),
    (0.325662452515, 0.977068762493), (0.422318282013, 1.04329000149), (0.531777802068, 1.06080371126),
    (0.641296298053, 1.03981924107), (0.738105872266, 0.972268833998), (0.824444363295, 0.889624082279),
    (0.894792677532, 0.792494155836), (0.939395486253, 0.681546643421), (0.96111933829, 0.562238253072),
    (0.970579841181, 0.441758925744), (0.971193274221, 0.322118743967), (0.163846223133, 0.249151738053),
    (0.21780354657, 0.204255863861), (0.291299351124, 0.192367318323), (0.367460241458, 0.203582210627),
    (0.4392945113, 0.233135599851), (0.586445962425, 0.228141644834), (0.660152671635, 0.195923841854),
    (0.737466449096, 0.182360984545), (0.813236546239, 0.192828009114), (0.8707571886, 0.235293377042),
    (0.51534533827, 0.31863546193), (0.516221448289, 0.396200446263), (0.517118861835, 0.473797687758),
    (0.51816430343, 0.553157797772), (0.433701156035, 0.604054457668), (0.475501237769, 0.62076344024),
    (0.520712933176, 0.634268222208), (0.565874114041, 0.618796581487), (0.607054002672, 0.60157671656),
    (0.252418718401, 0.331052263829), (0.298663015648, 0.302646354002), (0.355749724218, 0.303020650651),
    (0.403718978315, 0.33867711083), (0.352507175597, 0.349987615384), (0.296791759886, 0.350478978225),
    (0.631326076346, 0.334136672344), (0.679073381078, 0.29645404267), (0.73597236153, 0.294721285802),
    (0.782865376271, 0.321305281656), (0.740312274764, 0.341849376713), (0.68499850091, 0.343734332172),
    (0.353167761422, 0.746189164237), (0.414587777921, 0.719053835073), (0.477677654595, 0.706835892494),
    (0.522732900812, 0.717092275768), (0.569832064287, 0.705414478982), (0.635195811927, 0.71565572516),
    (0.69951672331, 0.739419187253), (0.639447159575, 0.805236879972), (0.576410514055, 0.835436670169),
    (0.525398405766, 0.841706377792), (0.47641545769, 0.837505914975), (0.41379548902, 0.810045601727),
    (0.380084785646, 0.749979603086), (0.477955996282, 0.74513234612), (0.523389793327, 0.748924302636),
    (0.571057789237, 0.74332894691), (0.672409137852, 0.744177032192), (0.572539621444, 0.776609286626),
    (0.5240106503, 0.783370783245), (0.477561227414, 0.778476346951)], dtype=np.float64)

LEFT_EYE, RIGHT_EYE = tuple(range(36, 42)), tuple(range(42, 48))
LEFT_BROW, RIGHT_BROW = tuple(range(17, 22)), tuple(range(22, 27))
NOSE, MOUTH = tuple(range(27, 36)), tuple(range(48, 68))
#: MoExt's crop points (1-based 8, 9, 25, 40, 43): chin, right brow, inner eye corners.
CHIN, CROP_BROW, INNER_EYES = (7, 8), 24, (39, 42)
#: Crop margins as fractions of the brow-to-chin height (settled here: MoExt does not give them).
TOP_MARGIN, BOTTOM_MARGIN = 0.12, 0.02


class DlibUnavailableError(ImportError):
    """dlib or the 68-point model is not installed."""


class FaceNotFoundError(ValueError):
    """No face detected in an image."""


def crop_box(shape: np.ndarray) -> tuple[float, float, float, float]:
    """Square crop ``(x0, y0, x1, y1)`` of a level face from MoExt's points.

    Top: brow point 25 raised by ``TOP_MARGIN`` of the brow-chin height; bottom: chin (points 8, 9)
    lowered by ``BOTTOM_MARGIN``; centred between the inner eye corners (points 40, 43).
    """
    brow_y = float(shape[CROP_BROW, 1])
    chin_y = float(shape[list(CHIN), 1].max())
    h = chin_y - brow_y
    if h <= 0:
        raise ValueError("degenerate landmarks: the chin is not below the brow")
    top, bottom = brow_y - TOP_MARGIN * h, chin_y + BOTTOM_MARGIN * h
    cx = float(shape[list(INNER_EYES), 0].mean())
    side = bottom - top
    return cx - side / 2, top, cx + side / 2, bottom


def _unit_canonical() -> np.ndarray:
    x0, y0, x1, _ = crop_box(TEMPLATE)
    return (TEMPLATE - (x0, y0)) / (x1 - x0)


UNIT_CANONICAL = _unit_canonical()  # (68, 2) in [0, 1] of a crop made by mercore.face.align


def canonical_landmarks(shape: Sequence[int] | np.ndarray) -> np.ndarray:
    """(68, 2) pixel (x, y) positions for an aligned crop of ``shape`` = (H, W[, C]) or an image."""
    h, w = _hw(shape)
    return UNIT_CANONICAL * (w, h)


def _hw(shape_or_image: Any) -> tuple[int, int]:
    if isinstance(shape_or_image, np.ndarray) and shape_or_image.ndim >= 2 and shape_or_image.size > 3:
        return int(shape_or_image.shape[0]), int(shape_or_image.shape[1])
    dims = tuple(int(v) for v in shape_or_image)
    if len(dims) < 2 or dims[0] < 1 or dims[1] < 1:
        raise ValueError(f"expected an image or an (H, W) shape, got {shape_or_image!r}")
    return dims[0], dims[1]


def dlib_installed() -> bool:
    """True when dlib and the 68-point model file are installed; cheap (nothing is imported or
    loaded), for deciding whether ``features.align: auto`` can align. :func:`dlib_available`
    also loads them."""
    if importlib.util.find_spec("dlib") is None:
        return False
    try:
        _model_path()
    except DlibUnavailableError:
        return False
    return True


def dlib_available() -> bool:
    """True when dlib and the 68-point model can be loaded."""
    try:
        _dlib_models()
    except DlibUnavailableError:
        return False
    return True


def _model_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DlibUnavailableError(f"the 68-point landmark model package 'face-recognition-models' is not "
                                   f"installed; {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / "shape_predictor_68_face_landmarks.dat"
        if path.is_file():
            return path
    raise DlibUnavailableError(f"shape_predictor_68_face_landmarks.dat not found in the "
                               f"face-recognition-models package; reinstall: {INSTALL_HINT}")


@lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any]:
    try:
        import dlib
    except ImportError as exc:
        raise DlibUnavailableError(f"dlib is not installed ({exc}); {INSTALL_HINT}") from None
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(_model_path()))


def _uint8_gray(image: np.ndarray) -> np.ndarray:
    import cv2

    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(img)


def detect_face(image: np.ndarray) -> tuple[int, int, int, int]:
    """The largest dlib HOG face ``(left, top, right, bottom)``; tries 0 then 1 upsampling."""
    detector, _ = _dlib_models()
    gray = _uint8_gray(image)
    for upsample in (0, 1):
        rects = list(detector(gray, upsample))
        if rects:
            r = max(rects, key=lambda r: r.width() * r.height())
            return r.left(), r.top(), r.right(), r.bottom()
    raise FaceNotFoundError(f"no face found by dlib's HOG detector in a {gray.shape[1]}x{gray.shape[0]} image")


def landmarks(image: np.ndarray | Sequence[int], backend: str = "dlib") -> np.ndarray:
    """(68, 2) float (x, y) landmark pixels of the (largest) face in ``image``.

    ``backend="canonical"`` accepts an ``(H, W)`` shape instead of an image.

    Raises:
        DlibUnavailableError: ``dlib`` backend without dlib installed (message says how to install).
        FaceNotFoundError: ``dlib`` found no face.
    """
    if backend == "canonical":
        return canonical_landmarks(image)
    if backend != "dlib":
        raise ValueError(f"unknown landmark backend {backend!r}; choose one of {BACKENDS}")
    if not isinstance(image, np.ndarray) or image.ndim < 2 or image.size <= 3:
        raise ValueError("the dlib backend needs an image, not a shape")
    import dlib

    _, predictor = _dlib_models()
    left, top, right, bottom = detect_face(image)
    shape = predictor(_uint8_gray(image), dlib.rectangle(left, top, right, bottom))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def _as_shape68(image_or_shape: Any, backend: str) -> np.ndarray:
    arr = np.asarray(image_or_shape) if not isinstance(image_or_shape, tuple) else None
    if arr is not None and arr.shape == (68, 2):
        return arr.astype(np.float64)
    return landmarks(image_or_shape, backend)


def five_points(image_or_shape: Any, backend: str = "dlib") -> dict[str, tuple[float, float]]:
    """Eye centres, nose tip and mouth corners in pixel (x, y).

    ``image_or_shape``: an image, an ``(H, W)`` shape (canonical backend) or a (68, 2) landmark array.
    """
    pts = _as_shape68(image_or_shape, backend)
    xy = lambda p: (float(p[0]), float(p[1]))  # noqa: E731
    return {"left_eye": xy(pts[list(LEFT_EYE)].mean(0)), "right_eye": xy(pts[list(RIGHT_EYE)].mean(0)),
            "nose": xy(pts[30]), "left_mouth": xy(pts[48]), "right_mouth": xy(pts[54])}


def regions(image_or_shape: Any, backend: str = "dlib", margin: float = 0.15) -> dict[str, tuple[int, int, int, int]]:
    """Landmark boxes ``(x0, y0, x1, y1)`` (x1, y1 exclusive) clipped to the image when its size is known.

    Keys: ``left_eye`` and ``right_eye`` (eye + brow), ``nose``, ``mouth``, ``left_mouth_corner``,
    ``right_mouth_corner``; each box is the landmarks' bounding box grown by ``margin`` of its size
    (mouth corners: a square of 40 % of the mouth width around points 49 and 55).
    """
    pts = _as_shape68(image_or_shape, backend)
    size = None
    if not (isinstance(image_or_shape, np.ndarray) and image_or_shape.shape == (68, 2)):
        size = _hw(image_or_shape)

    def box(idx: Sequence[int]) -> tuple[float, float, float, float]:
        p = pts[list(idx)]
        (x0, y0), (x1, y1) = p.min(0), p.max(0)
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        return x0 - mx, y0 - my, x1 + mx, y1 + my

    mouth_w = float(np.linalg.norm(pts[54] - pts[48]))
    r = 0.2 * mouth_w
    out = {"left_eye": box(LEFT_BROW + LEFT_EYE), "right_eye": box(RIGHT_BROW + RIGHT_EYE), "nose": box(NOSE),
           "mouth": box(MOUTH),
           "left_mouth_corner": (pts[48, 0] - r, pts[48, 1] - r, pts[48, 0] + r, pts[48, 1] + r),
           "right_mouth_corner": (pts[54, 0] - r, pts[54, 1] - r, pts[54, 0] + r, pts[54, 1] + r)}
    result: dict[str, tuple[int, int, int, int]] = {}
    for name, (x0, y0, x1, y1) in out.items():
        b = [int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)) + 1, int(np.ceil(y1)) + 1]
        if size is not None:
            h, w = size
            b = [min(max(b[0], 0), w - 1), min(max(b[1], 0), h - 1), min(max(b[2], 1), w), min(max(b[3], 1), h)]
        result[name] = (b[0], b[1], b[2], b[3])
    return result
