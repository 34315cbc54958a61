"""Procedural faces: one per subject (geometry, skin tone, hair, texture, lighting), with the
landmarks the facial actions move."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .plan import seeded_rng


@dataclass
class Face:
    """A subject's neutral face (and the same face with closed eyes, for blinks), float RGB [0, 1]."""

    subject: str
    neutral: np.ndarray  # (H, W, 3)
    closed: np.ndarray  # (H, W, 3)
    landmarks: dict[str, tuple[float, float]]  # name -> (x, y) in pixels
    params: dict[str, Any] = field(default_factory=dict)


SKIN_TONES = [(236, 200, 178), (224, 172, 140), (198, 150, 112), (172, 122, 88), (141, 96, 66),
              (110, 74, 52), (214, 180, 140), (186, 144, 120)]
HAIR = [(30, 22, 18), (70, 45, 25), (120, 85, 50), (200, 170, 110), (140, 140, 140), (90, 30, 20)]


def make_face(subject_index: int, size: int = 128, seed: int = 0) -> Face:
    """Draw subject ``subject_index`` (0-based): geometry, skin tone, hair, texture, lighting."""
    import cv2

    rng = seeded_rng(seed, 1000 + subject_index)
    S = 4  # supersampling of the drawing
    W = size * S

    def px(v: float) -> int:
        return int(round(v * W))

    cx, cy = 0.5 + rng.uniform(-0.03, 0.03), 0.53 + rng.uniform(-0.03, 0.03)
    a, b = rng.uniform(0.26, 0.33), rng.uniform(0.35, 0.42)
    skin = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], float) + rng.uniform(-12, 12, 3)
    hair = np.array(HAIR[rng.integers(len(HAIR))], float) + rng.uniform(-10, 10, 3)
    bg = rng.uniform(40, 220, 3)
    eye_y = cy - b * rng.uniform(0.12, 0.22)
    eye_dx = a * rng.uniform(0.36, 0.46)
    eye_rx = a * rng.uniform(0.17, 0.23)
    eye_ry = eye_rx * rng.uniform(0.42, 0.58)
    iris = rng.uniform(20, 140, 3)
    brow_y = eye_y - b * rng.uniform(0.15, 0.22)
    brow_t = rng.uniform(0.010, 0.020)
    brow_len = eye_rx * rng.uniform(1.1, 1.5)
    brow_arch = rng.uniform(0.0, 0.02)
    nose_y = cy + b * rng.uniform(0.12, 0.22)
    nose_w = a * rng.uniform(0.16, 0.24)
    mouth_y = cy + b * rng.uniform(0.42, 0.52)
    mouth_w = a * rng.uniform(0.30, 0.42)
    lip_t = b * rng.uniform(0.04, 0.07)
    lip = skin * np.array([0.85, 0.55, 0.55]) + rng.uniform(-10, 10, 3)
    shade = skin * 0.72
    hair_h = rng.uniform(0.15, 0.45)

    def draw(closed: bool) -> np.ndarray:
        img = np.empty((W, W, 3), np.float32)
        yy = np.linspace(0, 1, W, dtype=np.float32)[:, None, None]
        img[:] = bg[None, None, :] * (0.85 + 0.3 * yy)
        col = lambda c: tuple(float(v) for v in np.clip(c, 0, 255))  # noqa: E731
        # neck, hair behind, head
        cv2.rectangle(img, (px(cx - a * 0.45), px(cy + b * 0.6)), (px(cx + a * 0.45), W), col(shade), -1)
        cv2.ellipse(img, (px(cx), px(cy - b * 0.1)), (px(a * 1.08), px(b * 1.02)), 0, 180, 360, col(hair), -1,
                    cv2.LINE_AA)
        cv2.ellipse(img, (px(cx), px(cy)), (px(a), px(b)), 0, 0, 360, col(skin), -1, cv2.LINE_AA)
        cv2.ellipse(img, (px(cx), px(cy - b * 0.62)), (px(a * 1.0), px(b * hair_h)), 0, 180, 360, col(hair), -1,
                    cv2.LINE_AA)
        # ears
        for sx in (-1, 1):
            cv2.ellipse(img, (px(cx + sx * a * 0.98), px(eye_y + b * 0.1)), (px(a * 0.1), px(b * 0.16)), 0, 0, 360,
                        col(skin * 0.92), -1, cv2.LINE_AA)
        # eyes
        for sx in (-1, 1):
            ex = cx + sx * eye_dx
            if closed:
                cv2.ellipse(img, (px(ex), px(eye_y)), (px(eye_rx), px(eye_ry)), 0, 0, 360, col(skin * 0.9), -1,
                            cv2.LINE_AA)
                cv2.ellipse(img, (px(ex), px(eye_y + eye_ry * 0.3)), (px(eye_rx), px(eye_ry * 0.5)), 0, 0, 180,
                            col((40, 30, 30)), max(2, px(0.006)), cv2.LINE_AA)
            else:
                cv2.ellipse(img, (px(ex), px(eye_y)), (px(eye_rx), px(eye_ry)), 0, 0, 360, col((245, 242, 238)), -1,
                            cv2.LINE_AA)
                cv2.circle(img, (px(ex), px(eye_y)), px(eye_ry * 0.95), col(iris), -1, cv2.LINE_AA)
                cv2.circle(img, (px(ex), px(eye_y)), px(eye_ry * 0.45), col((15, 12, 12)), -1, cv2.LINE_AA)
                cv2.circle(img, (px(ex + eye_ry * 0.3), px(eye_y - eye_ry * 0.3)), max(1, px(eye_ry * 0.15)),
                           col((255, 255, 255)), -1, cv2.LINE_AA)
                cv2.ellipse(img, (px(ex), px(eye_y)), (px(eye_rx), px(eye_ry)), 0, 180, 360, col((40, 30, 30)),
                            max(2, px(0.005)), cv2.LINE_AA)
            # brow: thick arc
            pts = np.array([[ex + sx * brow_len * t, brow_y - brow_arch * (1 - (2 * t) ** 2)]
                            for t in np.linspace(-0.5, 0.5, 9)])
            cv2.polylines(img, [np.round(pts * W).astype(np.int32)], False, col(hair * 0.8), px(brow_t) + 1,
                          cv2.LINE_AA)
        # nose: bridge shading and nostrils
        cv2.line(img, (px(cx + nose_w * 0.35), px(eye_y + eye_ry)), (px(cx + nose_w * 0.5), px(nose_y - 0.01)),
                 col(shade), max(2, px(0.006)), cv2.LINE_AA)
        cv2.ellipse(img, (px(cx), px(nose_y)), (px(nose_w), px(nose_w * 0.45)), 0, 0, 180, col(shade),
                    max(2, px(0.008)), cv2.LINE_AA)
        for sx in (-1, 1):
            cv2.ellipse(img, (px(cx + sx * nose_w * 0.45), px(nose_y + nose_w * 0.15)),
                        (px(nose_w * 0.22), px(nose_w * 0.12)), 0, 0, 360, col(shade * 0.6), -1, cv2.LINE_AA)
        # mouth: upper and lower lip, dark line between
        cv2.ellipse(img, (px(cx), px(mouth_y)), (px(mouth_w), px(lip_t)), 0, 180, 360, col(lip), -1, cv2.LINE_AA)
        cv2.ellipse(img, (px(cx), px(mouth_y)), (px(mouth_w * 0.9), px(lip_t * 1.3)), 0, 0, 180, col(lip * 1.08), -1,
                    cv2.LINE_AA)
        cv2.line(img, (px(cx - mouth_w), px(mouth_y)), (px(cx + mouth_w), px(mouth_y)), col(lip * 0.45),
                 max(2, px(0.006)), cv2.LINE_AA)
        # chin crease, nasolabial folds
        cv2.ellipse(img, (px(cx), px(mouth_y + b * 0.3)), (px(mouth_w * 0.5), px(b * 0.05)), 0, 200, 340,
                    col(shade * 1.1), max(2, px(0.005)), cv2.LINE_AA)
        for sx in (-1, 1):
            cv2.line(img, (px(cx + sx * nose_w * 1.1), px(nose_y + 0.005)),
                     (px(cx + sx * mouth_w * 1.15), px(mouth_y + 0.01)), col(shade * 1.1), max(2, px(0.004)),
                     cv2.LINE_AA)
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)

    neutral, closed = draw(False), draw(True)
    # shared static texture (pores, blotches) and lighting: moves with the face, gives flow a grip
    tex = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.8 * size / 128)
    tex = tex / (tex.std() + 1e-6) * rng.uniform(4, 8)
    blot = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 6 * size / 128)
    blot = blot / (blot.std() + 1e-6) * rng.uniform(3, 8)
    ang = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0.1, 0.35)
    g = np.linspace(-1, 1, size, dtype=np.float32)
    light = 1 + strength * (np.cos(ang) * g[None, :] + np.sin(ang) * g[:, None]) / 1.4
    light = (light * rng.uniform(0.8, 1.1)).astype(np.float32)[..., None]
    tint = rng.uniform(0.92, 1.08, 3).astype(np.float32)
    faces = []
    for img in (neutral, closed):
        img = (img + (tex + blot)[..., None]) * light * tint
        faces.append(np.clip(img / 255.0, 0, 1).astype(np.float32))
    P = lambda x, y: (float(x * size), float(y * size))  # noqa: E731
    lm = {
        "brow_l_in": P(cx - eye_dx + brow_len * 0.4, brow_y), "brow_r_in": P(cx + eye_dx - brow_len * 0.4, brow_y),
        "brow_l_out": P(cx - eye_dx - brow_len * 0.4, brow_y), "brow_r_out": P(cx + eye_dx + brow_len * 0.4, brow_y),
        "eye_l": P(cx - eye_dx, eye_y), "eye_r": P(cx + eye_dx, eye_y),
        "lid_l": P(cx - eye_dx, eye_y + eye_ry), "lid_r": P(cx + eye_dx, eye_y + eye_ry),
        "cheek_l": P(cx - eye_dx, (eye_y + nose_y) / 2 + 0.03), "cheek_r": P(cx + eye_dx, (eye_y + nose_y) / 2 + 0.03),
        "nose_l": P(cx - nose_w * 0.6, nose_y - 0.04), "nose_r": P(cx + nose_w * 0.6, nose_y - 0.04),
        "upper_lip": P(cx, mouth_y - lip_t * 0.6), "lower_lip": P(cx, mouth_y + lip_t * 0.9),
        "corner_l": P(cx - mouth_w, mouth_y), "corner_r": P(cx + mouth_w, mouth_y),
        "chin": P(cx, mouth_y + b * 0.32), "center": P(cx, cy),
    }
    params = {"center": [cx, cy], "axes": [a, b], "skin": skin.round(1).tolist(), "light": [ang, strength]}
    return Face(f"sub{subject_index + 1:02d}", faces[0], faces[1], lm, params)
