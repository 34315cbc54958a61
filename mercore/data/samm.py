"""SAMM adapter: the frame tree and the ``SAMM_Micro_FACS_Codes`` spreadsheet.

Layout as distributed::

    <root>/SAMM/<subject>/<clip>/<subject>_<frame>.jpg      (root may also be the SAMM folder itself)
    <root>/SAMM_Micro_FACS_Codes_v2.xlsx                     (or beside/inside the SAMM folder)

Quirks handled: the sheet has title rows above its header (row 13 in v2; the header row is found
by its ``Subject`` and ``Filename`` cells, so other versions work); subjects are ``6`` in the sheet
and ``006`` on disk (``Sample.subject`` is ``006``); a few clips name their frames differently, so
frames are matched by the trailing number of the file name; an apex of ``-1``, ``/`` or blank is
taken as the midpoint between onset and offset.

The helpers :func:`numbered_frames`, :func:`option_path` and :func:`check_clip_dir` are shared by
the other corpus adapters (SMIC, CAS(ME)^3).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

from ..labels import MEGC3, MEGC3_RULES, SAMM_SDE5, SDE5_RULES, LabelSet, map_emotion
from ..sample import Sample
from .casme2 import CodingSheet, _inside, read_coding_table
from .dataset import Dataset, DatasetError, LoadedDataset, LoadOptions

log = logging.getLogger(__name__)

FPS = 200.0
#: Every emotion word SAMM's sheet uses (``Other`` is SAMM's "others").
EMOTIONS = frozenset({"anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise", "other", "others"})
SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes*.xlsx", "SAMM_Micro_FACS_Codes*.csv", "SAMM*Codes*.xlsx")
UNKNOWN_APEX = {"/", "-", "", "none", "nan", "n/a", "-1"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

_TRAILING_NUMBER = re.compile(r"(\d+)\.(?:jpe?g|png|bmp)$", re.IGNORECASE)
_SUBJECT_RE = re.compile(r"^0*(\d+)$")


# ----------------------------------------------------------------------------- shared helpers
def option_path(root: Path, extra: Mapping[str, Any], key: str, *, folder: bool) -> Path | None:
    """``extra[key]`` as a path (absolute, or relative to ``root``), checked to exist; None if unset."""
    if not extra.get(key):
        return None
    p = Path(str(extra[key])).expanduser()
    p = p if p.is_absolute() else root / p
    if not (p.is_dir() if folder else p.is_file()):
        raise DatasetError(f"{'folder' if folder else 'file'} {p} (-D {key}=PATH) not found")
    return p


def numbered_frames(clip_dir: Path) -> list[tuple[int, Path]]:
    """``(N, path)`` for every image of a folder whose name ends in a number, sorted by N.

    Raises:
        ValueError: two files with the same trailing number (the clip's order would be ambiguous).
    """
    frames: dict[int, Path] = {}
    with os.scandir(clip_dir) as it:
        for entry in it:
            m = _TRAILING_NUMBER.search(entry.name)
            if m and entry.is_file():
                n = int(m.group(1))
                if n in frames:
                    raise ValueError(f"{clip_dir}: frames {frames[n].name} and {entry.name} share number {n}")
                frames[n] = Path(entry.path)
    return sorted(frames.items())


def check_clip_dir(clip_dir: Path, frames_root: Path) -> list[tuple[int, Path]]:
    """The numbered frames of a clip folder that must exist, lie inside ``frames_root`` and hold images."""
    if not _inside(clip_dir, frames_root):
        raise ValueError(f"clip folder {clip_dir} lies outside the data root {frames_root}")
    if not clip_dir.is_dir():
        raise ValueError(f"clip folder {clip_dir} not found")
    frames = numbered_frames(clip_dir)
    if not frames:
        raise ValueError(f"clip folder {clip_dir} has no numbered image frames")
    return frames


def frame_positions(frames: list[tuple[int, Path]], clip_dir: Path,
                    wanted: Mapping[str, int | None]) -> dict[str, int | None]:
    """Positions in ``frames`` of the frame numbers in ``wanted`` (column name -> N or None)."""
    pos = {n: i for i, (n, _) in enumerate(frames)}
    span = f"{frames[0][0]}..{frames[-1][0]}, {len(frames)} files"
    out: dict[str, int | None] = {}
    for col, n in wanted.items():
        if n is not None and n not in pos:
            raise ValueError(f"{col} {n} is not among the frames of {clip_dir} ({span})")
        out[col] = None if n is None else pos[n]
    return out


# ----------------------------------------------------------------------------- SAMM
def normalize_subject(value: Any) -> str:
    """``6``, ``6.0``, ``"006"`` -> ``"006"``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    m = _SUBJECT_RE.match(str(value if value is not None else "").strip())
    if not m:
        raise ValueError(f"Subject {value!r} is not a SAMM subject number")
    return f"{int(m.group(1)):03d}"


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
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data root {root} is not a folder")
    tasks = dict(tasks or SammDataset.tasks)
    task = options.task or "megc3"
    if task not in tasks:
        raise DatasetError(f"dataset 'samm' has no task {task!r}; choose one of {sorted(tasks)}")
    extra = dict(options.extra or {})
    frames_root = find_frames_root(root, extra)
    sheet = find_sheet(root, frames_root, extra)
    rules = {"megc3": MEGC3_RULES, "sde5": SDE5_RULES}

    samples: list[Sample] = []
    skipped: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for rec in read_coding_table(sheet):
        where = f"{sheet} row {rec['_row']}"
        try:
            subject, clip, emotion, onset_n, apex_n, offset_n = SAMM_SHEET.row(rec, seen)
            labels = {name: idx for name, ls in tasks.items()
                      if (idx := map_emotion("samm", emotion, rules.get(name, {}), ls)) is not None}
            if task not in labels:
                continue  # not part of the requested task
            clip_dir = frames_root / subject / clip
            frames = check_clip_dir(clip_dir, frames_root)
            pos = frame_positions(frames, clip_dir, {"Onset Frame": onset_n, "Apex Frame": apex_n,
                                                     "Offset Frame": offset_n})
            onset, offset = pos["Onset Frame"], pos["Offset Frame"]
            apex = pos["Apex Frame"] if apex_n is not None else (onset + offset) // 2
            if apex_n is None:
                log.info("%s: apex %r unknown, using the midpoint frame", where, rec["apex"])
        except (ValueError, KeyError, OSError) as exc:
            msg = f"{where} ({rec.get('subject')}/{rec.get('filename')}): {exc}"
            if options.skip_invalid:
                skipped.append(msg)
                continue
            raise DatasetError(msg + " (pass --skip-invalid to leave such rows out)") from None
        samples.append(Sample(
            dataset="samm", subject=subject, clip=clip, frames=tuple(p for _, p in frames),
            onset=onset, apex=apex, offset=offset, emotion=emotion, labels=labels, fps=FPS,
            frame_numbers=tuple(n for n, _ in frames)))
    samples.sort(key=lambda s: (s.subject, s.clip))
    return LoadedDataset(name="samm", task=task, labels=tasks[task], samples=samples, skipped=skipped)


class SammDataset(Dataset):
    """SAMM (200 fps) with its FACS coding sheet."""

    name = "samm"
    description = "SAMM: SAMM/<subject>/<clip>/<subject>_<frame>.jpg + SAMM_Micro_FACS_Codes_v2.xlsx (200 fps)"
    tasks = {"megc3": MEGC3, "sde5": SAMM_SDE5}
    default_task = "megc3"
    kind = "clips"
    requires_root = True

    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        if root is None:
            raise DatasetError("dataset 'samm' needs a data root (the folder with SAMM/ and "
                               "SAMM_Micro_FACS_Codes_v2.xlsx)")
        return load_samm(root, options, self.tasks)
