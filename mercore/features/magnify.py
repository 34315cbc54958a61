"""Flow-based motion magnification (the offline default for MPFNet's AFE module).

The learning-based magnifier of Oh et al. (ECCV 2018), used by MPFNet, renders the frame in which
the onset -> apex motion ``delta`` is amplified, ``I(x + (1 + phi) delta)`` in the papers'
notation. Without its weights we render the same thing by warping the onset image along the
measured flow: a point ``x`` of the onset moves to ``x + (1 + phi) delta(x)``, approximated by the
backward warp ``I_mag(y) = I_onset(y - (1 + phi) delta(y))`` (the flow is sampled at the target
instead of the source point, exact for smooth, small motion). ``phi = 0`` therefore
reproduces (approximately) the apex, ``phi > 0`` exaggerates the motion.
"""
from __future__ import annotations

import numpy as np

from .flow import backward_warp, check_flow


def magnify(image: np.ndarray, flow: np.ndarray, phi: float) -> np.ndarray:
    """Onset image with the onset -> apex motion scaled by ``1 + phi``.

    Args:
        image: onset image, (H, W) or (H, W, C) float in [0, 1].
        flow: onset -> apex flow (2, H, W) = (u, v) in pixels (see :func:`mercore.features.flow.compute_flow`).
        phi: magnification factor (>= -1); 0 gives ~the apex, 1 doubles the displacement.

    Returns:
        float32 image of the input's shape, clipped to [0, 1].
    """
    check_flow(flow)
    if image.ndim not in (2, 3) or image.shape[:2] != flow.shape[1:]:
        raise ValueError(f"image of shape {image.shape} does not match flow of shape {flow.shape}")
    if not np.isfinite(phi) or phi < -1:
        raise ValueError(f"magnification factor phi must be a finite number >= -1, got {phi!r}")
    out = backward_warp(image, -(1.0 + float(phi)) * flow.astype(np.float32))
    return np.clip(out, 0.0, 1.0).astype(np.float32)
