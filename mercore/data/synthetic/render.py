"""Rendering a planned clip on a face: the facial actions as a smooth displacement field with an
onset -> apex -> offset profile, under head jitter, blinks, flicker, sensor noise and JPEG.

OpenCV is imported inside the functions that use it."""
from __future__ import annotations

import numpy as np

from .faces import Face
from .plan import ClipSpec, seeded_rng

# Facial actions: (landmark, direction (dx, dy) in image coordinates, weight, sigma scale)
# "l"/"r" are image left/right. Directions are unit-ish; the whole field is renormalised.
AU_BUMPS: dict[str, list[tuple[str, tuple[float, float], float, float]]] = {
    "1": [("brow_l_in", (0.0, -1.0), 1.0, 0.9), ("brow_r_in", (0.0, -1.0), 1.0, 0.9)],
    "2": [("brow_l_out", (0.0, -1.0), 1.0, 0.9), ("brow_r_out", (0.0, -1.0), 1.0, 0.9)],
    "4": [("brow_l_in", (0.5, 0.8), 1.0, 0.8), ("brow_r_in", (-0.5, 0.8), 1.0, 0.8)],
    "6": [("cheek_l", (0.0, -1.0), 1.0, 1.3), ("cheek_r", (0.0, -1.0), 1.0, 1.3),
          ("lid_l", (0.0, -1.0), 0.4, 0.6), ("lid_r", (0.0, -1.0), 0.4, 0.6)],
    "7": [("lid_l", (0.0, -1.0), 1.0, 0.6), ("lid_r", (0.0, -1.0), 1.0, 0.6)],
    "9": [("nose_l", (0.3, -1.0), 1.0, 0.8), ("nose_r", (-0.3, -1.0), 1.0, 0.8)],
    "10": [("upper_lip", (0.0, -1.0), 1.0, 0.9), ("corner_l", (0.0, -1.0), 0.3, 0.7),
           ("corner_r", (0.0, -1.0), 0.3, 0.7)],
    "12": [("corner_l", (-0.6, -0.8), 1.0, 0.9), ("corner_r", (0.6, -0.8), 1.0, 0.9)],
    "14": [("corner_l", (1.0, 0.0), 1.0, 0.7), ("corner_r", (-1.0, 0.0), 1.0, 0.7)],
    "15": [("corner_l", (0.0, 1.0), 1.0, 0.8), ("corner_r", (0.0, 1.0), 1.0, 0.8)],
    "17": [("chin", (0.0, -1.0), 1.0, 1.2), ("lower_lip", (0.0, -1.0), 0.6, 0.8)],
    "24": [("upper_lip", (0.0, 1.0), 0.6, 0.8), ("lower_lip", (0.0, -1.0), 1.0, 0.8)],
    "26": [("chin", (0.0, 1.0), 1.0, 1.4), ("lower_lip", (0.0, 1.0), 0.8, 0.9)],
}


def action_field(face: Face, spec: ClipSpec, size: int | None = None) -> np.ndarray:
    """Ground-truth expression displacement at the apex, (H, W, 2) as (dx, dy) in pixels.

    A sum of Gaussian bumps around the landmarks of the clip's actions (with per-clip position and
    width jitter), normalised so that its largest magnitude is ``spec.peak_px``. Frame ``t`` moves
    by ``profile(spec)[t] * field`` (plus the rigid head motion, which is not part of it).
    """
    size = size or face.neutral.shape[0]
    rng = seeded_rng(spec.seed, 1)
    macro = spec.kind == "macro"
    sigma0 = size * (0.075 if macro else 0.05)
    jit = size / 128.0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    fld = np.zeros((size, size, 2), np.float32)
    for au, weight, side in spec.actions:
        for name, (dx, dy), w, ss in AU_BUMPS[au]:
            if (side == "l" and name.endswith("_r")) or (side == "r" and name.endswith("_l")):
                continue
            x0, y0 = face.landmarks[name]
            x0 += rng.normal(0, 0.8 * jit)
            y0 += rng.normal(0, 0.8 * jit)
            sig = sigma0 * ss * rng.uniform(0.85, 1.15)
            amp = weight * w * (rng.uniform(0.75, 1.0) if side == "b" else 1.0)
            g = np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sig * sig)) * amp
            fld[..., 0] += g * dx
            fld[..., 1] += g * dy
    peak = float(np.sqrt((fld ** 2).sum(-1)).max())
    if peak > 0:
        fld *= spec.peak_px / peak
    return fld


def profile(spec: ClipSpec) -> np.ndarray:
    """Amplitude per frame in [0, 1]: 0 before onset, raised-cosine rise to 1 at apex, fall to 0 at offset."""
    t = np.arange(spec.n_frames, dtype=np.float64)
    a = np.zeros_like(t)
    up = (t >= spec.onset) & (t <= spec.apex)
    x = (t[up] - spec.onset) / max(spec.apex - spec.onset, 1)
    a[up] = 0.5 - 0.5 * np.cos(np.pi * x ** spec.gamma)
    down = (t > spec.apex) & (t <= spec.offset)
    x = (t[down] - spec.apex) / max(spec.offset - spec.apex, 1)
    a[down] = 0.5 + 0.5 * np.cos(np.pi * x ** (1.0 / spec.gamma))
    return a


def smooth_walk(rng: np.random.Generator, n: int, amp: float) -> np.ndarray:
    """A slow random trajectory of ``n`` frames within about +-``amp`` (rigid head jitter)."""
    t = np.arange(n) / max(n - 1, 1)
    out = np.zeros(n)
    for _ in range(2):
        out += np.sin(2 * np.pi * (rng.uniform(0.2, 1.5) * t + rng.uniform()))
    return out / 2 * amp


def render_clip(face: Face, spec: ClipSpec, jpeg_quality: int = 95) -> list[bytes]:
    """JPEG bytes of every frame of a clip (deterministic for ``spec.seed``)."""
    import cv2

    size = face.neutral.shape[0]
    rng = seeded_rng(spec.seed, 2)
    fld = action_field(face, spec, size)
    amp = profile(spec)
    n = spec.n_frames
    k = size / 128.0
    # nuisances
    tx = smooth_walk(rng, n, rng.uniform(0.2, 1.0) * k)
    ty = smooth_walk(rng, n, rng.uniform(0.2, 1.0) * k)
    rot = np.deg2rad(smooth_walk(rng, n, rng.uniform(0.1, 0.5)))
    blink = np.zeros(n)
    if rng.random() < 0.4:
        d = int(rng.integers(5, 11))
        start = (spec.apex - d // 2) if rng.random() < 0.3 else int(rng.integers(-d // 2, n - d // 2))
        closure = rng.uniform(0.7, 1.0)
        for i in range(d):
            if 0 <= start + i < n:
                blink[start + i] = closure * np.sin(np.pi * (i + 0.5) / d)
    flicker = 1 + rng.uniform(0.005, 0.02) * rng.normal(0, 1, n) + smooth_walk(rng, n, rng.uniform(0.0, 0.03))
    noise_sigma = rng.uniform(1.0, 2.0) / 255.0
    cx, cy = face.landmarks["center"]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    out = []
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(jpeg_quality)]
    for t in range(n):
        base = face.neutral if blink[t] <= 0 else \
            face.neutral + np.float32(blink[t]) * (face.closed - face.neutral)  # float32: cv2 remap of float64 drops borders
        c, s = np.cos(rot[t]), np.sin(rot[t])
        qx, qy = xs - cx - tx[t], ys - cy - ty[t]
        mx = (c * qx + s * qy + cx) - amp[t] * fld[..., 0]
        my = (-s * qx + c * qy + cy) - amp[t] * fld[..., 1]
        img: np.ndarray = cv2.remap(base, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_CUBIC,
                        borderMode=cv2.BORDER_REFLECT101)
        img = img * np.float32(flicker[t]) + rng.normal(0, noise_sigma, img.shape).astype(np.float32)
        u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise OSError("JPEG encoding failed")
        out.append(buf.tobytes())
    return out
