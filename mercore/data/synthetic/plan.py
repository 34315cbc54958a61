"""The corpus plan: which clips exist and what happens in each (class, timing, facial actions,
peak displacement, seeds), drawn without rendering a pixel."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: SDE5 class -> share of the corpus (CASME II's 5-class proportions, rounded).
CLASS_PROPORTIONS = {"happiness": 0.13, "surprise": 0.10, "disgust": 0.26, "repression": 0.11, "others": 0.40}
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


def seeded_rng(*keys: int) -> np.random.Generator:
    """One generator per tuple of keys (seed, subject, clip ...): every draw repeats exactly."""
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in keys])


def class_counts(n: int, proportions: dict[str, float] = CLASS_PROPORTIONS) -> dict[str, int]:
    """Largest-remainder split of ``n`` clips over the classes."""
    raw = {k: n * p for k, p in proportions.items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: -(raw[k] - counts[k]))[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def pick_actions(rng: np.random.Generator, emotion: str) -> list[tuple[str, float, str]]:
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
    seeded_rng(seed, tag, 7).shuffle(emotions)
    lo, hi = (6.0, 20.0) if macro else (float(peak_px[0]), float(peak_px[1]))
    lo_f, hi_f = (40, 90) if macro else (min_frames, max_frames)
    scale = size / 128.0
    specs = []
    for s in range(subjects):
        srng = seeded_rng(seed, tag, 100 + s)
        base = srng.uniform(lo + 0.25 * (hi - lo), lo + 0.65 * (hi - lo))
        for c in range(clips_per_subject):
            emotion = emotions[s * clips_per_subject + c]
            crng = seeded_rng(seed, tag, 10_000 + s, c)
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
                start_number=int(crng.integers(1, 120)), actions=pick_actions(crng, emotion),
                peak_px=round(peak, 4), seed=int(crng.integers(2**31)), kind=kind,
                gamma=float(crng.uniform(0.7, 1.4))))
    return specs
