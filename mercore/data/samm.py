"""SAMM adapter: the frame tree and the ``SAMM_Micro_FACS_Codes`` spreadsheet.

Layout as distributed::

    <root>/SAMM/<subject>/<clip>/<subject>_<frame>.jpg      (root may also be the SAMM folder itself)
    <root>/SAMM_Micro_FACS_Codes_v2.xlsx                     (or beside/inside the SAMM folder)

Quirks handled: the sheet has title rows above its header (row 13 in v2; the header row is found
by its ``Subject`` and ``Filename`` cells, so other versions work); subjects are ``6`` in the sheet
and ``006`` on disk (``Sample.subject`` is ``006``); a few clips name their frames differently, so
frames are matched by the trailing number of the file name; an apex of ``-1``, ``/`` or blank is
taken as the midpoint between onset and offset.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping

from ..labels import MEGC3, MEGC3_RULES, SAMM_SDE5, SDE5_RULES, LabelSet, map_emotion
from ..sample import Sample
from .casme2 import CodingSheet, describe_row, read_coding_table, subject_number
from .dataset import Dataset, DatasetError, LoadedDataset, LoadOptions, choose_task, collect_samples, data_root
from .folders import check_clip_dir, frame_positions, option_path

log = logging.getLogger(__name__)

FPS = 200.0
#: Every emotion word SAMM's sheet uses (``Other`` is SAMM's "others").
EMOTIONS = frozenset({"anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "other", "others"})
SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes*.xlsx", "SAMM_Micro_FACS_Codes*.csv", "SAMM*Codes*.xlsx")
UNKNOWN_APEX = {"/", "-", "", "none", "nan", "n/a", "-1"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

_SUBJECT_RE = re.compile(r"^0*(\d+)$")


def normalize_subject(value: Any) -> str:
    """``6``, ``6.0``, ``"006"`` -> ``"006"``."""
    return f"{subject_number(value, _SUBJECT_RE, 'a SAMM subject number'):03d}"


SAMM_SHEET = CodingSheet(EMOTIONS, frozenset(UNKNOWN_APEX), normalize_subject,
                         ("Onset Frame", "Apex Frame", "Offset Frame"))


def _has_subject_folders(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_dir() and re.fullmatch(r"\d{3}", p.name) for p in folder.iterdir())


def find_frames_root(root: Path, extra: Mapping[str, Any]) -> Path:
    """The folder holding the ``006/``-style subject folders: option ``frames``, ``root/SAMM`` or ``root``."""
    given = option_path(root, extra, "frames", folder=True)
    if given is not None:
        return given
    if (root / "SAMM").is_dir():
        return root / "SAMM"
    if _has_subject_folders(root):
        return root
    raise DatasetError(f"no SAMM frame folder under {root}: expected {root / 'SAMM'} or 3-digit subject "
                       f"folders (006/...) directly in it")


def find_sheet(root: Path, frames_root: Path, extra: Mapping[str, Any]) -> Path:
    """Option ``coding``, else the newest-named ``SAMM_Micro_FACS_Codes*`` in root, the frame folder or its parent."""
    given = option_path(root, extra, "coding", folder=False)
    if given is not None:
        return given
    folders = list(dict.fromkeys([root, frames_root, frames_root.parent]))
    for folder in folders:
        found = sorted({p for pat in SHEET_PATTERNS for p in folder.glob(pat) if p.is_file()})
        if found:
            return found[-1]
    raise DatasetError(f"no SAMM coding sheet ({' or '.join(SHEET_PATTERNS)}) in "
                       f"{' or '.join(str(f) for f in folders)}; name one with -D coding=PATH")


def load_samm(root: Path | str, options: LoadOptions, tasks: Mapping[str, LabelSet] | None = None) -> LoadedDataset:
    """Read a SAMM tree into the samples of ``options.task`` (``megc3`` or ``sde5``).

    Raises:
        DatasetError: naming the sheet and row, unless ``options.skip_invalid``.
    """
    root = data_root(root)
    tasks = dict(tasks or SammDataset.tasks)
    task = choose_task("samm", tasks, options.task)
    extra = dict(options.extra or {})
    frames_root = find_frames_root(root, extra)
    sheet = find_sheet(root, frames_root, extra)
    rules = {"megc3": MEGC3_RULES, "sde5": SDE5_RULES}
    seen: dict[tuple[str, str], int] = {}

    def read(rec: dict[str, Any]) -> Sample | None:
        subject, clip, emotion, onset_n, apex_n, offset_n = SAMM_SHEET.row(rec, seen)
        labels = {name: idx for name, ls in tasks.items()
                  if (idx := map_emotion("samm", emotion, rules.get(name, {}), ls)) is not None}
        if task not in labels:
            return None  # not part of the requested task
        clip_dir = frames_root / subject / clip
        frames = check_clip_dir(clip_dir, frames_root)
        pos = frame_positions(frames, clip_dir, {"Onset Frame": onset_n, "Apex Frame": apex_n,
                                                 "Offset Frame": offset_n})
        onset, apex_at, offset = pos["Onset Frame"], pos["Apex Frame"], pos["Offset Frame"]
        assert onset is not None and offset is not None  # their frame numbers are never None
        apex = apex_at if apex_at is not None else (onset + offset) // 2  # apex_at is None iff apex_n is
        if apex_n is None:
            log.info("%s row %s: apex %r unknown, using the midpoint frame", sheet, rec["_row"], rec["apex"])
        return Sample(dataset="samm", subject=subject, clip=clip, frames=tuple(p for _, p in frames),
                      onset=onset, apex=apex, offset=offset, emotion=emotion, labels=labels, fps=FPS,
                      frame_numbers=tuple(n for n, _ in frames))

    skipped: list[str] = []
    samples = collect_samples(read_coding_table(sheet), read, describe_row, options, skipped)
    samples.sort(key=lambda s: (s.subject, s.clip))
    return LoadedDataset(name="samm", task=task, labels=tasks[task], samples=samples, skipped=skipped)


class SammDataset(Dataset):
    """SAMM (200 fps) with its FACS coding sheet."""

    name = "samm"
    options = ("frames", "coding")
    description = "SAMM: SAMM/<subject>/<clip>/<subject>_<frame>.jpg + SAMM_Micro_FACS_Codes_v2.xlsx (200 fps)"
    tasks = {"megc3": MEGC3, "sde5": SAMM_SDE5}

    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        root = self.need_root(root, "the folder with SAMM/ and SAMM_Micro_FACS_Codes_v2.xlsx")
        return load_samm(root, options, self.tasks)
