"""Dense optical flow, optical strain, normalisation and warping (pure numpy / OpenCV / scikit-image).

Conventions used everywhere in ``mercore``:

* images are ``(H, W)`` grayscale or ``(H, W, C)`` float arrays with values in [0, 1];
* a flow field is a ``(2, H, W)`` float32 array ``(u, v)``: ``u`` is the horizontal (x, column)
  and ``v`` the vertical (y, row) displacement in pixels;
* the flow from ``prev`` to ``nxt`` maps a point ``x`` of ``prev`` to ``x + flow(x)`` in ``nxt``,
  i.e. ``prev(x) ~ nxt(x + flow(x))``; content moving right gives ``u > 0``, moving down ``v > 0``.

OpenCV is imported inside the functions that use it: loading the plugin registry (``mer plugins``,
``mer datasets``) imports this module and should not pay for it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

FLOW_BACKENDS: tuple[str, ...] = ("tvl1", "farneback", "dis", "tvl1-torch")
"""Names accepted by :func:`compute_flow`."""


def _check_gray(name: str, image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 2:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"{name} must be a grayscale (H, W) array, got shape {shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"{name} is too small for optical flow: shape {image.shape}")


def check_flow(flow: np.ndarray, name: str = "flow") -> None:
    """Raise ``ValueError`` unless ``flow`` is a ``(2, H, W)`` array."""
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[0] != 2:
        shape = getattr(flow, "shape", type(flow).__name__)
        raise ValueError(f"{name} must be a (2, H, W) array (u, v), got shape {shape}")


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def _flow_tvl1(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    from skimage.registration import optical_flow_tvl1

    # scikit-image: reference (prev) ~ moving (nxt) warped by the flow; returned rows first (v, u)
    v, u = optical_flow_tvl1(prev.astype(np.float32), nxt.astype(np.float32), dtype=np.float32)
    return np.stack([u, v])


def _flow_tvl1_torch(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    return compute_flow_batch(prev[None], nxt[None], "tvl1-torch")[0]


def _flow_farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    import cv2

    flow = cv2.calcOpticalFlowFarneback(_to_uint8(prev), _to_uint8(nxt), None, pyr_scale=0.5, levels=3,
                                        winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
    return np.moveaxis(flow, -1, 0)  # (H, W, 2) with (dx, dy) -> (2, H, W) = (u, v)


def _flow_dis(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    import cv2

    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    # no initial flow: OpenCV accepts None there, its stubs do not
    flow = dis.calc(_to_uint8(prev), _to_uint8(nxt), None)  # type: ignore[call-overload]
    return np.moveaxis(flow, -1, 0)


_BACKENDS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "tvl1": _flow_tvl1,
    "farneback": _flow_farneback,
    "dis": _flow_dis,
    "tvl1-torch": _flow_tvl1_torch,
}


def check_backend(backend: str) -> None:
    """Raise ``ValueError`` naming the choices unless ``backend`` is a known flow backend."""
    if backend not in _BACKENDS:
        raise ValueError(f"unknown optical flow backend {backend!r}; choose one of: {', '.join(FLOW_BACKENDS)}")


def compute_flow(prev: np.ndarray, nxt: np.ndarray, backend: str = "tvl1") -> np.ndarray:
    """Dense optical flow from ``prev`` to ``nxt``.

    Args:
        prev, nxt: grayscale float images (H, W) with values in [0, 1], same shape.
        backend: ``"tvl1"`` (scikit-image TV-L1, Zach et al. 2007; default parameters; the most
            accurate on sub-pixel motion, ~0.2 s at 128x128), ``"farneback"`` (OpenCV
            polynomial expansion; pyramid 3 levels, window 15) or ``"dis"`` (OpenCV Dense Inverse
            Search, MEDIUM preset). The OpenCV backends work on the images quantised to uint8.
            ``"tvl1-torch"``: the same TV-L1 in PyTorch (:mod:`mercore.features.torch_flow`,
            on CUDA when available, else CPU); agrees with ``"tvl1"`` up to float rounding.

    Returns:
        float32 array (2, H, W) = (u, v) in pixels: ``prev(x) ~ nxt(x + flow(x))``.
    """
    check_backend(backend)
    _check_gray("prev", prev)
    _check_gray("nxt", nxt)
    if prev.shape != nxt.shape:
        raise ValueError(f"prev and nxt must have the same shape, got {prev.shape} and {nxt.shape}")
    flow = _BACKENDS[backend](np.asarray(prev, dtype=np.float32), np.asarray(nxt, dtype=np.float32))
    return np.ascontiguousarray(flow, dtype=np.float32)


def compute_flow_batch(prevs: np.ndarray, nxts: np.ndarray, backend: str = "tvl1",
                       batch_size: int = 64) -> np.ndarray:
    """Flow of many same-size pairs: ``tvl1-torch`` solves ``batch_size`` pairs at once (CUDA when
    available), the other backends loop over :func:`compute_flow`.

    Args:
        prevs, nxts: (N, H, W) grayscale float arrays with values in [0, 1].

    Returns:
        float32 array (N, 2, H, W) = (u, v) per pair.
    """
    check_backend(backend)
    prevs, nxts = np.ascontiguousarray(prevs, dtype=np.float32), np.ascontiguousarray(nxts, dtype=np.float32)
    if prevs.ndim != 3 or prevs.shape != nxts.shape:
        raise ValueError(f"prevs and nxts must be (N, H, W) arrays of one shape, got {prevs.shape} and {nxts.shape}")
    if min(prevs.shape[1:]) < 2:
        raise ValueError(f"images are too small for optical flow: shape {prevs.shape[1:]}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = np.empty((prevs.shape[0], 2, *prevs.shape[1:]), dtype=np.float32)
    if backend != "tvl1-torch":
        for i, (p, n) in enumerate(zip(prevs, nxts)):
            out[i] = compute_flow(p, n, backend)
        return out
    import torch

    from .torch_flow import default_device, tvl1_torch

    device = default_device()
    with torch.inference_mode():
        for i in range(0, len(prevs), batch_size):
            p = torch.from_numpy(prevs[i:i + batch_size]).to(device)
            n = torch.from_numpy(nxts[i:i + batch_size]).to(device)
            out[i:i + batch_size] = tvl1_torch(p, n).cpu().numpy()
    return out


#: Optical strain magnitudes: ``tensor`` is the strain tensor's (STSTNet, HTNet, METHODS.md),
#: ``dfrnet`` the formula DFR-Net's eq. 7 prints (squares of the two shears, not of their mean).
STRAIN_FORMULAS = ("tensor", "dfrnet")


def optical_strain(flow: np.ndarray, formula: str = "tensor") -> np.ndarray:
    """Magnitude of the infinitesimal strain tensor of a flow field.

    ``e_xx = du/dx``, ``e_yy = dv/dy``, ``e_xy = 0.5 (du/dy + dv/dx)`` (central differences via
    ``np.gradient``, one-sided at the border), ``|e| = sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2)``
    (``formula="tensor"``). ``formula="dfrnet"`` is DFR-Net's eq. 7 as printed,
    ``sqrt(e_xx^2 + e_yy^2 + 1/2 ((du/dy)^2 + (dv/dx)^2))``: it lacks the ``du/dy dv/dx`` cross term,
    so a rotation (du/dy = -dv/dx) has strain there and none in the tensor's.

    Args:
        flow: (2, H, W) = (u, v).
        formula: ``tensor`` or ``dfrnet``.

    Returns:
        float32 array (1, H, W).
    """
    check_flow(flow)
    if formula not in STRAIN_FORMULAS:
        raise ValueError(f"unknown strain formula {formula!r}; choose one of: {', '.join(STRAIN_FORMULAS)}")
    if flow.shape[1] < 2 or flow.shape[2] < 2:
        raise ValueError(f"flow is too small for derivatives: shape {flow.shape}")
    u, v = flow.astype(np.float64)
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    if formula == "dfrnet":
        shear = 0.5 * (du_dy ** 2 + dv_dx ** 2)
    else:
        shear = 2.0 * (0.5 * (du_dy + dv_dx)) ** 2
    magnitude = np.sqrt(du_dx ** 2 + dv_dy ** 2 + shear)
    return magnitude[None].astype(np.float32)


def minmax_normalise(x: np.ndarray) -> np.ndarray:
    """Scale each channel of a (C, H, W) array to [0, 1] independently.

    This is what the public precomputed-flow releases do before storing u, v and strain as 8-bit
    images (there scaled to 0-255). A constant channel becomes all zeros (no division by zero).
    """
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ValueError(f"minmax_normalise expects a (C, H, W) array, got shape {getattr(x, 'shape', None)}")
    x = x.astype(np.float32)
    lo = x.min(axis=(1, 2), keepdims=True)
    span = x.max(axis=(1, 2), keepdims=True) - lo
    out = np.zeros_like(x)
    np.divide(x - lo, span, out=out, where=span > 0)
    return out


def backward_warp(image: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Sample ``image`` at ``x + displacement(x)``: ``out(x) = image(x + d(x))``.

    Bilinear interpolation (``cv2.remap``), replicated border.

    Args:
        image: (H, W) or (H, W, C) float array.
        displacement: (2, H, W) = (dx, dy) in pixels, same H, W as the image.

    Returns:
        float32 array of the image's shape.
    """
    import cv2

    check_flow(displacement, "displacement")
    if image.ndim not in (2, 3) or image.shape[:2] != displacement.shape[1:]:
        raise ValueError(f"image of shape {image.shape} does not match displacement of shape {displacement.shape}")
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = xs + displacement[0].astype(np.float32)
    map_y = ys + displacement[1].astype(np.float32)
    src = np.ascontiguousarray(image, dtype=np.float32)
    if src.ndim == 3 and src.shape[2] > 4:  # cv2.remap handles at most 4 channels at once
        return np.stack([cv2.remap(np.ascontiguousarray(src[..., c]), map_x, map_y, cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE) for c in range(src.shape[2])], axis=-1)
    out = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)
