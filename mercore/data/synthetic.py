"""The built-in synthetic micro-expression corpus, written in the CASME II layout.

``generate(out_dir)`` draws one procedural face per subject (head, hair, eyes, brows, nose, mouth,
skin texture, lighting), then renders clips in which class-specific facial actions move small
face regions by 0.5-3 px (at 128x128) with a smooth onset -> apex -> offset profile, under
nuisances shared by every class (rigid head jitter, blinks, illumination flicker, sensor noise,
JPEG). The tree is the one the CASME II adapter reads::

    out_dir/CASME2_RAW_selected/subNN/EPcc_01/imgN.jpg
    out_dir/CASME2-coding-synthetic.xlsx
    out_dir/generator.json                       (parameters, counts, per-clip ground truth)
    out_dir/macro/...                            (same layout, with macro=True)

``SyntheticDataset`` (name ``synthetic``) generates it into the cache on first use and reads it
with :func:`mercore.data.casme2.load_casme2_tree`. See ``docs/synthetic-corpus.md``.

OpenCV is imported inside the functions that use it: loading the plugin registry (``mer plugins``,
``mer datasets``) imports this module and should not pay for it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import ConfigError
from ..interrupt import process_alive
from ..io import umask
from ..labels import CASME2_SDE5, MEGC3
from .casme2 import load_casme2_tree
from .dataset import Dataset, DatasetError, LoadedDataset, LoadOptions

GENERATOR_VERSION = 1
SHEET_NAME = "CASME2-coding-synthetic.xlsx"
MACRO_SHEET_NAME = "CASME2-coding-synthetic-macro.xlsx"
FRAMES_FOLDER = "CASME2_RAW_selected"
FPS = 200.0
#: SDE5 class -> share of the corpus (CASME II's 5-class proportions, rounded).
CLASS_PROPORTIONS = {"happiness": 0.13, "surprise": 0.10, "disgust": 0.26, "repression": 0.11, "others": 0.40}
DEFAULTS: dict[str, Any] = {
    "subjects": 16, "clips_per_subject": 16, "size": 128, "seed": 0,
    "min_frames": 20, "max_frames": 60, "peak_px": (0.5, 3.0), "jpeg_quality": 95,
    "macro": False, "macro_clips_per_subject": 4,
}

# --------------------------------------------------------------------------------------------
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
#: class -> [(AU, probability, weight range)]; the first action of a class is always present.
CLASS_ACTIONS: dict[str, list[tuple[str, float, tuple[float, float]]]] = {
    "happiness": [("12", 1.0, (0.9, 1.0)), ("6", 0.7, (0.3, 0.6))],
    "surprise": [("1", 1.0, (0.8, 1.0)), ("2", 0.9, (0.7, 1.0)), ("26", 0.6, (0.3, 0.6))],
    "disgust": [("9", 1.0, (0.8, 1.0)), ("10", 0.8, (0.5, 0.9)), ("4", 0.3, (0.3, 0.5))],
    "repression": [("24", 1.0, (0.8, 1.0)), ("17", 0.8, (0.5, 1.0)), ("14", 0.3, (0.3, 0.5))],
}
#: AUs of "others" (1-2 of them, often one-sided) and of the weak distractors any class may carry.
OTHER_AUS = ("4", "7", "2", "14", "15", "12")
DISTRACTOR_PROB = 0.25
OTHERS_GAIN = 0.7


@dataclass
class Face:
    """A subject's neutral face (and the same face with closed eyes, for blinks), float RGB [0, 1]."""

    subject: str
    neutral: np.ndarray  # (H, W, 3)
    closed: np.ndarray  # (H, W, 3)
    landmarks: dict[str, tuple[float, float]]  # name -> (x, y) in pixels
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClipSpec:
    """Everything that determines one clip; ``frame_numbers`` are the N of ``imgN.jpg``."""

    subject: str
    clip: str
    emotion: str
    n_frames: int
    onset: int
    apex: int
    offset: int
    start_number: int
    actions: list[tuple[str, float, str]]  # (AU, weight, side "b"/"l"/"r")
    peak_px: float
    seed: int
    kind: str = "micro"
    gamma: float = 1.0

    @property
    def frame_numbers(self) -> list[int]:
        return list(range(self.start_number, self.start_number + self.n_frames))

    @property
    def action_units(self) -> str:
        return "+".join(dict.fromkeys(("L" if s == "l" else "R" if s == "r" else "") + au
                                      for au, _, s in self.actions))


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])


# --------------------------------------------------------------------------------------------
# Faces

SKIN_TONES = [(236, 200, 178), (224, 172, 140), (198, 150, 112), (172, 122, 88), (141, 96, 66),
              (110, 74, 52), (214, 180, 140), (186, 144, 120)]
HAIR = [(30, 22, 18), (70, 45, 25), (120, 85, 50), (200, 170, 110), (140, 140, 140), (90, 30, 20)]


def make_face(subject_index: int, size: int = 128, seed: int = 0) -> Face:
    """Draw subject ``subject_index`` (0-based): geometry, skin tone, hair, texture, lighting."""
    import cv2

    rng = _rng(seed, 1000 + subject_index)
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


# --------------------------------------------------------------------------------------------
# Clips

def class_counts(n: int, proportions: dict[str, float] = CLASS_PROPORTIONS) -> dict[str, int]:
    """Largest-remainder split of ``n`` clips over the classes."""
    raw = {k: n * p for k, p in proportions.items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: -(raw[k] - counts[k]))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _pick_actions(rng: np.random.Generator, emotion: str) -> list[tuple[str, float, str]]:
    actions: list[tuple[str, float, str]] = []
    if emotion == "others":
        k = 1 + int(rng.random() < 0.5)
        for au in rng.choice(OTHER_AUS, size=k, replace=False):
            side = str(rng.choice(["b", "l", "r"], p=[0.4, 0.3, 0.3]))
            actions.append((str(au), float(rng.uniform(0.5, 1.0)), side))
    else:
        for i, (au, p, (lo, hi)) in enumerate(CLASS_ACTIONS[emotion]):
            if i == 0 or rng.random() < p:
                actions.append((au, float(rng.uniform(lo, hi)), "b"))
    if rng.random() < DISTRACTOR_PROB:
        au = str(rng.choice(OTHER_AUS))
        actions.append((au, float(rng.uniform(0.15, 0.35)), str(rng.choice(["b", "l", "r"]))))
    return actions


def plan_corpus(subjects: int = 16, clips_per_subject: int = 16, size: int = 128, seed: int = 0, *,
                min_frames: int = 20, max_frames: int = 60, peak_px: Sequence[float] = (0.5, 3.0),
                kind: str = "micro", **_: Any) -> list[ClipSpec]:
    """The clips of a corpus (no pixels): class, timing, actions and peak displacement of each.

    Peak displacements are drawn per subject (base) and per clip (factor) within ``peak_px`` at
    128x128 and scaled by ``size / 128``; macro clips (``kind="macro"``) use 6-20 px and 40-90 frames.
    """
    macro = kind == "macro"
    tag = 2 if macro else 1
    n = subjects * clips_per_subject
    counts = class_counts(n)
    emotions = [e for e, c in counts.items() for _ in range(c)]
    _rng(seed, tag, 7).shuffle(emotions)
    lo, hi = (6.0, 20.0) if macro else (float(peak_px[0]), float(peak_px[1]))
    lo_f, hi_f = (40, 90) if macro else (min_frames, max_frames)
    scale = size / 128.0
    specs = []
    for s in range(subjects):
        srng = _rng(seed, tag, 100 + s)
        base = srng.uniform(lo + 0.25 * (hi - lo), lo + 0.65 * (hi - lo))
        for c in range(clips_per_subject):
            emotion = emotions[s * clips_per_subject + c]
            crng = _rng(seed, tag, 10_000 + s, c)
            n_frames = int(crng.integers(lo_f, hi_f + 1))
            onset = int(crng.integers(0, 4))
            offset = n_frames - 1 - int(crng.integers(0, 4))
            apex = onset + int(round((offset - onset) * crng.uniform(0.3, 0.65)))
            apex = min(max(apex, onset + 1), offset - 1)
            peak = base * float(np.exp(crng.normal(0, 0.3)))
            if emotion == "others":
                peak *= OTHERS_GAIN
            peak = float(np.clip(peak, lo, hi)) * scale
            specs.append(ClipSpec(
                subject=f"sub{s + 1:02d}", clip=f"{'MA' if macro else 'EP'}{c + 1:02d}_01", emotion=emotion,
                n_frames=n_frames, onset=onset, apex=apex, offset=offset,
                start_number=int(crng.integers(1, 120)), actions=_pick_actions(crng, emotion),
                peak_px=round(peak, 4), seed=int(crng.integers(2**31)), kind=kind,
                gamma=float(crng.uniform(0.7, 1.4))))
    return specs


def action_field(face: Face, spec: ClipSpec, size: int | None = None) -> np.ndarray:
    """Ground-truth expression displacement at the apex, (H, W, 2) as (dx, dy) in pixels.

    A sum of Gaussian bumps around the landmarks of the clip's actions (with per-clip position and
    width jitter), normalised so that its largest magnitude is ``spec.peak_px``. Frame ``t`` moves
    by ``profile(spec)[t] * field`` (plus the rigid head motion, which is not part of it).
    """
    size = size or face.neutral.shape[0]
    rng = _rng(spec.seed, 1)
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


def _smooth_walk(rng: np.random.Generator, n: int, amp: float) -> np.ndarray:
    t = np.arange(n) / max(n - 1, 1)
    out = np.zeros(n)
    for _ in range(2):
        out += np.sin(2 * np.pi * (rng.uniform(0.2, 1.5) * t + rng.uniform()))
    return out / 2 * amp


def render_clip(face: Face, spec: ClipSpec, jpeg_quality: int = 95) -> list[bytes]:
    """JPEG bytes of every frame of a clip (deterministic for ``spec.seed``)."""
    import cv2

    size = face.neutral.shape[0]
    rng = _rng(spec.seed, 2)
    fld = action_field(face, spec, size)
    amp = profile(spec)
    n = spec.n_frames
    k = size / 128.0
    # nuisances
    tx = _smooth_walk(rng, n, rng.uniform(0.2, 1.0) * k)
    ty = _smooth_walk(rng, n, rng.uniform(0.2, 1.0) * k)
    rot = np.deg2rad(_smooth_walk(rng, n, rng.uniform(0.1, 0.5)))
    blink = np.zeros(n)
    if rng.random() < 0.4:
        d = int(rng.integers(5, 11))
        start = (spec.apex - d // 2) if rng.random() < 0.3 else int(rng.integers(-d // 2, n - d // 2))
        closure = rng.uniform(0.7, 1.0)
        for i in range(d):
            if 0 <= start + i < n:
                blink[start + i] = closure * np.sin(np.pi * (i + 0.5) / d)
    flicker = 1 + rng.uniform(0.005, 0.02) * rng.normal(0, 1, n) + _smooth_walk(rng, n, rng.uniform(0.0, 0.03))
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
        img = cv2.remap(base, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_CUBIC,
                        borderMode=cv2.BORDER_REFLECT101)
        img = img * np.float32(flicker[t]) + rng.normal(0, noise_sigma, img.shape).astype(np.float32)
        u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise OSError("JPEG encoding failed")
        out.append(buf.tobytes())
    return out


# --------------------------------------------------------------------------------------------
# Writing the tree

HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]


def _xlsx_bytes(rows: list[list[Any]]) -> bytes:
    """An xlsx with fixed timestamps and zip dates, so the same rows give the same bytes."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(HEADER)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(<)", rb"\g<1>2000-01-01T00:00:00Z\2", data)
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, data)
    return out.getvalue()


def _write_tree(dest: Path, faces: list[Face], specs: list[ClipSpec], sheet_name: str, jpeg_quality: int) -> None:
    rows = []
    by_subject = {f.subject: f for f in faces}
    for spec in specs:
        clip_dir = dest / FRAMES_FOLDER / spec.subject / spec.clip
        clip_dir.mkdir(parents=True, exist_ok=True)
        for number, data in zip(spec.frame_numbers, render_clip(by_subject[spec.subject], spec, jpeg_quality)):
            (clip_dir / f"img{number}.jpg").write_bytes(data)
        nums = spec.frame_numbers
        rows.append([spec.subject[3:], spec.clip, nums[spec.onset], nums[spec.apex], nums[spec.offset],
                     spec.action_units, spec.emotion])
    (dest / sheet_name).write_bytes(_xlsx_bytes(rows))


def generator_params(**overrides: Any) -> dict[str, Any]:
    """The full parameter set (defaults updated by ``overrides``), as ``generator.json`` records it."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown generator parameter(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    params = {**DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        params["peak_px"] = [float(v) for v in params["peak_px"]]
    except (TypeError, ValueError):
        raise ValueError(f"generator parameter 'peak_px': expected two numbers, got {params['peak_px']!r}") from None
    for k in ("subjects", "clips_per_subject", "size", "seed", "min_frames", "max_frames", "jpeg_quality",
              "macro_clips_per_subject"):
        value = params[k]
        if isinstance(value, bool) or not (isinstance(value, int) or str(value).strip().lstrip("-").isdigit()):
            raise ValueError(f"generator parameter {k!r}: expected an integer, got {value!r}")
        params[k] = int(value)
    params["macro"] = bool(params["macro"])
    if params["subjects"] < 1 or params["clips_per_subject"] < 1 or params["size"] < 32:
        raise ValueError("need subjects >= 1, clips_per_subject >= 1 and size >= 32")
    if not 3 <= params["min_frames"] <= params["max_frames"]:
        raise ValueError("need 3 <= min_frames <= max_frames")
    return params


def params_hash(params: dict[str, Any]) -> str:
    blob = json.dumps({"version": GENERATOR_VERSION, **params}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def generate(out_dir: Path | str, *, subjects: int = 16, clips_per_subject: int = 16, size: int = 128,
             seed: int = 0, macro: bool = False, overwrite: bool = False, **more: Any) -> Path:
    """Write the synthetic corpus in the CASME II layout into ``out_dir`` and return it.

    Args:
        out_dir: target folder; must not exist, or be empty, unless ``overwrite``.
        subjects, clips_per_subject, size, seed: corpus shape; same parameters -> same bytes.
        macro: also write macro-expression clips (6-20 px, 40-90 frames) under ``out_dir/macro/``
            (same layout, sheet ``CASME2-coding-synthetic-macro.xlsx``).
        overwrite: replace an existing non-empty ``out_dir``.
        **more: other :data:`DEFAULTS` (``min_frames``, ``max_frames``, ``peak_px``, ``jpeg_quality``,
            ``macro_clips_per_subject``).

    The tree is built in a hidden sibling folder and renamed into place at the end, so an
    interrupted run never leaves a partial ``out_dir``; ``generator.json`` is written last. An
    interrupted generator removes its folder (SIGTERM too, under ``mer synth``); one killed
    outright leaves it to the next generator of the same ``out_dir``, which removes it.
    """
    params = generator_params(subjects=subjects, clips_per_subject=clips_per_subject, size=size, seed=seed,
                              macro=macro, **more)
    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists and is not empty (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-{os.getpid()}-"))
    try:
        faces = [make_face(s, params["size"], params["seed"]) for s in range(params["subjects"])]
        specs = plan_corpus(**params)
        _write_tree(tmp, faces, specs, SHEET_NAME, params["jpeg_quality"])
        meta: dict[str, Any] = {
            "generator": "mercore.data.synthetic", "version": GENERATOR_VERSION, "params": params,
            "hash": params_hash(params), "fps": FPS,
            "counts": {e: sum(s.emotion == e for s in specs) for e in CLASS_PROPORTIONS},
            "clips": [asdict(s) for s in specs],
        }
        if params["macro"]:
            mspecs = plan_corpus(**{**params, "clips_per_subject": params["macro_clips_per_subject"]}, kind="macro")
            _write_tree(tmp / "macro", faces, mspecs, MACRO_SHEET_NAME, params["jpeg_quality"])
            meta["macro_clips"] = [asdict(s) for s in mspecs]
        (tmp / "generator.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's 0700 would hide a shared corpus from others
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-{os.getpid()}-"))
            os.replace(out_dir, old / "x")
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if (out_dir / "generator.json").is_file():  # a concurrent generator finished first
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _remove_orphans(out_dir: Path) -> None:
    """Remove the ``.<name>.tmp-<pid>-*`` / ``.old-<pid>-*`` folders of generators that died
    (SIGKILL: no cleanup ran); those of a generator still running are left alone."""
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(?:tmp|old)-(\d+)-")
    for folder in out_dir.parent.iterdir():
        m = pattern.match(folder.name)
        if m and folder.is_dir() and not process_alive(int(m.group(1))):
            shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The dataset

class SyntheticDataset(Dataset):
    """Built-in synthetic micro-expression corpus (generated into the cache on first use)."""

    name = "synthetic"
    description = "built-in synthetic micro-expressions, CASME II layout; 16 subjects x 8 clips, 128 px"
    tasks = {"megc3": MEGC3, "sde5": CASME2_SDE5}
    default_task = "megc3"
    kind = "clips"
    requires_root = False
    face_aligned = True  # faces are generated centred and level: nothing to detect or align

    GENERATOR_KEYS = ("subjects", "clips_per_subject", "size", "seed", "min_frames", "max_frames", "peak_px",
                      "jpeg_quality", "macro", "macro_clips_per_subject")

    def ensure(self, options: LoadOptions) -> Path:
        """The cached corpus for the generator parameters in ``options.extra`` (generated if absent)."""
        extra = dict(options.extra or {})
        wants_macro = extra.get("kind") == "macro" or bool(extra.get("macro"))
        try:
            params = generator_params(**{k: extra[k] for k in self.GENERATOR_KEYS if k in extra and k != "macro"},
                                      macro=wants_macro)
        except ValueError as exc:  # a bad -D value: a usage error, as a bad --set is
            raise ConfigError(f"-D option of the synthetic corpus: {exc}") from None
        root = Path(options.cache_dir) / "synthetic" / params_hash(params)
        if not (root / "generator.json").is_file():
            generate(root, overwrite=root.exists(), **params)
        return root

    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        self.label_set(options.task)
        extra = dict(options.extra or {})
        root = self.ensure(options) if root is None else Path(root)
        if extra.get("kind") == "macro":
            root = root / "macro"
        if not root.is_dir():
            raise DatasetError(f"synthetic corpus folder {root} not found (write one with `mer synth --out DIR`)")
        meta = root / "generator.json"
        fps = FPS
        if meta.is_file():
            fps = float(json.loads(meta.read_text()).get("fps", FPS))
        return load_casme2_tree(root, options, dataset_name="synthetic", excluded=(), fps=fps, tasks=self.tasks)
