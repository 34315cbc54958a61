"""One micro-expression clip, as every dataset adapter hands it to the core."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class Sample:
    """A clip with its annotation.

    Attributes:
        dataset: corpus name (``casme2``, ``samm``, ``smic``, ``synthetic`` ...).
        subject: subject id as the corpus writes it in its ground truth (``sub01``, ``006``, ``s01``).
        clip: clip id (``EP02_01f``); unique within (dataset, subject) only.
        frames: ordered frame image paths of the clip (empty for precomputed-feature releases).
        onset, apex, offset: positions in ``frames`` (0-based), or -1 when unknown.
        emotion: the corpus's own emotion word for the clip.
        labels: task name -> class index (``{"megc3": 0, "sde5": 2}``); a task the clip does not
            belong to (e.g. ``others`` in the 3-class task) is absent.
        fps: frame rate of the recording.
        extras: named files beyond the frames (precomputed flow images, apex crops ...).
        frame_numbers: the corpus's own frame numbers for ``frames`` (for reports and errors).
    """

    dataset: str
    subject: str
    clip: str
    frames: tuple[Path, ...] = field(default=(), repr=False)
    onset: int = -1
    apex: int = -1
    offset: int = -1
    emotion: str = ""
    labels: Mapping[str, int] = field(default_factory=dict)
    fps: float = 0.0
    extras: Mapping[str, Path] = field(default_factory=dict)
    frame_numbers: tuple[int, ...] = field(default=(), repr=False)

    @property
    def key(self) -> str:
        """Globally unique id: clip names repeat across subjects and corpora."""
        return f"{self.dataset}/{self.subject}/{self.clip}"

    @property
    def group(self) -> str:
        """The LOSO unit: a subject namespaced by its corpus (s01 of SMIC is not sub01 of CASME II)."""
        return f"{self.dataset}/{self.subject}"

    def label(self, task: str) -> int:
        try:
            return self.labels[task]
        except KeyError:
            raise KeyError(f"sample {self.key} has no label for task {task!r}; it has {sorted(self.labels)}") from None
