"""Frame interpolation between onset and apex (MPFNet builds its L-frame clips this way).

MPFNet uses a learned video frame interpolator (EMA-VFI, Zhang et al. CVPR 2023). The offline
default here, :class:`FlowInterpolator`, warps both end frames toward time ``t`` along the
onset -> apex flow and blends them. A learned model plugs in by subclassing :class:`Interpolator`
and registering it with :func:`register_interpolator`.
"""
from __future__ import annotations

import abc
from typing import Callable

import numpy as np

from .flow import backward_warp, check_flow


class Interpolator(abc.ABC):
    """Renders the frame at time ``t`` in [0, 1] between ``frame0`` (t=0) and ``frame1`` (t=1)."""

    @abc.abstractmethod
    def __call__(self, frame0: np.ndarray, frame1: np.ndarray, t: float, flow01: np.ndarray) -> np.ndarray:
        """Args: frames (H, W[, C]) float in [0, 1]; ``flow01`` (2, H, W) from frame0 to frame1.
        Returns the (H, W[, C]) float32 frame at time ``t``."""


class FlowInterpolator(Interpolator):
    """Linear-motion interpolation along the flow, with a cross-fade.

    ``frame_t(x) = (1 - t) * frame0(x - t * flow(x)) + t * frame1(x + (1 - t) * flow(x))``:
    frame0 pushed forward by ``t * flow`` and frame1 pulled back by ``(1 - t) * flow``, both
    approximated by backward warps with the flow sampled at the target point. Exact at t = 0 and 1.
    """

    def __call__(self, frame0: np.ndarray, frame1: np.ndarray, t: float, flow01: np.ndarray) -> np.ndarray:
        check_flow(flow01, "flow01")
        if frame0.shape != frame1.shape or frame0.shape[:2] != flow01.shape[1:]:
            raise ValueError(f"frames {frame0.shape}, {frame1.shape} and flow {flow01.shape} do not match")
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"t must lie in [0, 1], got {t}")
        flow = flow01.astype(np.float32)
        warped0 = backward_warp(frame0, -t * flow)
        warped1 = backward_warp(frame1, (1.0 - t) * flow)
        return ((1.0 - t) * warped0 + t * warped1).astype(np.float32)


_INTERPOLATORS: dict[str, Callable[[], Interpolator]] = {"flow": FlowInterpolator}


def register_interpolator(name: str, factory: Callable[[], Interpolator]) -> None:
    """Make an interpolator available by name (e.g. a learned VFI model from a plugin)."""
    _INTERPOLATORS[name] = factory


def get_interpolator(name: str) -> Interpolator:
    """A fresh interpolator by name; ``ValueError`` listing the choices for unknown names."""
    if name not in _INTERPOLATORS:
        raise ValueError(f"unknown frame interpolator {name!r}; choose one of: {', '.join(sorted(_INTERPOLATORS))}")
    return _INTERPOLATORS[name]()


def interpolate_sequence(onset: np.ndarray, apex: np.ndarray, length: int, flow: np.ndarray,
                         interpolator: Interpolator | None = None) -> np.ndarray:
    """``length`` frames evenly spaced in time from ``onset`` (first) to ``apex`` (last).

    Args:
        onset, apex: (H, W, C) float images in [0, 1] (a (H, W) image is treated as C = 1).
        length: number of frames, >= 2; the end frames are returned unchanged.
        flow: onset -> apex flow (2, H, W).
        interpolator: defaults to :class:`FlowInterpolator`.

    Returns:
        float32 array (length, H, W, C).
    """
    if int(length) != length or length < 2:
        raise ValueError(f"length must be an integer >= 2, got {length!r}")
    length = int(length)
    check_flow(flow)
    if onset.ndim == 2:
        onset, apex = onset[..., None], apex[..., None]
    if onset.ndim != 3 or onset.shape != apex.shape or onset.shape[:2] != flow.shape[1:]:
        raise ValueError(f"onset {onset.shape}, apex {apex.shape} and flow {flow.shape} do not match")
    interpolator = interpolator or FlowInterpolator()
    frames = [onset.astype(np.float32)]
    for t in np.linspace(0.0, 1.0, length)[1:-1]:
        frame = np.asarray(interpolator(onset, apex, float(t), flow), dtype=np.float32)
        frames.append(frame.reshape(onset.shape))
    frames.append(apex.astype(np.float32))
    return np.stack(frames)
