"""CASME II adapter: the raw (or cropped) release and its coding spreadsheet.

Layout as distributed::

    <root>/CASME2_RAW_selected/subNN/<clip>/imgN.jpg     (or Cropped/, CASME2_Cropped/ with reg_imgN.jpg)
    <root>/CASME2-coding-YYYYMMDD.xlsx                    (or a .csv with the same header)

``root`` may also be the folder that holds the ``subNN`` folders itself (the coding file is then
looked for there and in its parent). The synthetic corpus is written in this layout and read by
the same code (:func:`load_casme2_tree` with ``dataset_name="synthetic"``).

Frame numbers in the sheet are the ``N`` of ``imgN.jpg``; a clip's ``Sample.frames`` holds every
frame of its folder sorted by ``N`` and ``onset/apex/offset`` are positions in that tuple. An apex
written as ``/`` (sub04/EP12_01f in some sheet versions) or left blank is taken as the midpoint
between onset and offset.
"""
from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ..labels import CASME2_SDE5, MEGC2019_CASME2_EXCLUDED, MEGC3, MEGC3_RULES, SDE5_RULES, LabelSet, map_emotion
from ..sample import Sample
from .dataset import Dataset, DatasetError, LoadedDataset, LoadOptions, choose_task, collect_samples, data_root
from .folders import Frames, check_clip_dir, frame_positions, frame_span

log = logging.getLogger(__name__)

#: Column name -> key of the dicts :func:`read_coding_table` returns. Matching ignores case,
#: spaces and underscores, so ``Onset Frame`` and ``OnsetFrame`` are the same column.
COLUMNS = {
    "subject": "subject",
    "filename": "filename",
    "onsetframe": "onset",
    "apexframe": "apex",
    "offsetframe": "offset",
    "actionunits": "action_units",
    "estimatedemotion": "emotion",
}
REQUIRED = ("subject", "filename", "onset", "apex", "offset", "emotion")
#: Every emotion word the CASME II sheets use (the tasks keep only some of them).
EMOTIONS = frozenset({"happiness", "surprise", "disgust", "repression", "others", "fear", "sadness"})
#: Frame folders looked for under the root, in order of preference.
FRAME_FOLDERS = ("CASME2_RAW_selected", "CASME2-RAW-selected", "CASME2_RAW", "CASME2_Cropped", "Cropped")
CODING_PATTERNS = ("CASME2-coding*.xlsx", "CASME2-coding*.csv", "CASME2_coding*.xlsx", "CASME2_coding*.csv")
FPS = 200.0
UNKNOWN_APEX = {"/", "-", "", "none", "nan", "n/a"}

_FRAME_RE = re.compile(r"^(?:reg_)?img(\d+)\.(?:jpe?g|png|bmp)$", re.IGNORECASE)
_SUBJECT_RE = re.compile(r"^(?:sub)?0*(\d+)$", re.IGNORECASE)


def _norm_header(value: Any) -> str:
    return re.sub(r"[\s_]+", "", str(value or "")).lower()


def read_coding_table(path: Path | str) -> list[dict[str, Any]]:
    """Rows of a CASME II coding sheet (``.xlsx`` via openpyxl, or ``.csv``).

    Each row is a dict with the keys ``subject, filename, onset, apex, offset, action_units,
    emotion`` (raw cell values; ``action_units`` may be absent), plus ``_row`` (the row number as a
    spreadsheet shows it, header row included) and ``_file``. The header is the first row (of the
    first 20) that has a ``Subject`` and a ``Filename`` column; blank rows are skipped.

    Raises:
        DatasetError: unreadable file, no header row, or a required column missing.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            import openpyxl

            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
            try:
                rows = [tuple(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
            finally:
                wb.close()
        elif path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = [tuple(r) for r in csv.reader(f)]
        else:
            raise DatasetError(f"{path}: coding table must be .xlsx or .csv")
    except DatasetError:
        raise
    except Exception as exc:  # zip errors, decoding errors, permission ...
        raise DatasetError(f"{path}: cannot read coding table ({type(exc).__name__}: {exc})") from exc

    header_at = None
    for i, row in enumerate(rows[:20]):
        names = {_norm_header(c) for c in row}
        if "subject" in names and "filename" in names:
            header_at = i
            break
    if header_at is None:
        raise DatasetError(f"{path}: no header row with 'Subject' and 'Filename' in the first 20 rows")
    index: dict[str, int] = {}
    for j, cell in enumerate(rows[header_at]):
        key = COLUMNS.get(_norm_header(cell))
        if key is not None and key not in index:
            index[key] = j
    missing = [k for k in REQUIRED if k not in index]
    if missing:
        wanted = {v: k for k, v in COLUMNS.items()}
        pretty = {"subject": "Subject", "filename": "Filename", "onset": "OnsetFrame", "apex": "ApexFrame",
                  "offset": "OffsetFrame", "emotion": "Estimated Emotion"}
        raise DatasetError(f"{path}: missing required column(s) {[pretty.get(m, wanted[m]) for m in missing]} "
                           f"in header row {header_at + 1}")
    out = []
    for i, row in enumerate(rows[header_at + 1:], start=header_at + 2):
        if all(c is None or str(c).strip() == "" for c in row):
            continue
        rec: dict[str, Any] = {k: (row[j] if j < len(row) else None) for k, j in index.items()}
        rec["_row"] = i
        rec["_file"] = str(path)
        out.append(rec)
    return out


def describe_row(rec: Mapping[str, Any]) -> str:
    """How an error names a row of a coding sheet: ``<sheet> row <n> (<subject>/<filename>)``."""
    return f"{rec['_file']} row {rec['_row']} ({rec.get('subject')}/{rec.get('filename')})"


def _date_key(path: Path) -> tuple[int, str]:
    dates = re.findall(r"(?<!\d)(\d{8})(?!\d)", path.stem)
    return (int(dates[-1]) if dates else 0, path.name)


def find_coding_file(root: Path, extra: Mapping[str, Any] | None = None) -> Path:
    """The coding sheet to use: ``extra["coding"]`` (a path, absolute or relative to ``root``),
    else the newest-named ``CASME2-coding-*.xlsx|csv`` (latest 8-digit date in the name, then name)."""
    extra = extra or {}
    if extra.get("coding"):
        p = Path(extra["coding"])
        p = p if p.is_absolute() else root / p
        if not p.is_file():
            raise DatasetError(f"coding file {p} (-D coding=PATH) not found")
        return p
    folders = [root]
    if not any(any(root.glob(pat)) for pat in CODING_PATTERNS) and _has_subject_folders(root):
        folders.append(root.parent)
    for folder in folders:
        found = sorted({p for pat in CODING_PATTERNS for p in folder.glob(pat) if p.is_file()}, key=_date_key)
        if found:
            if len(found) > 1:
                log.info("several CASME II coding files in %s; using %s (choose with -D coding=PATH)",
                         folder, found[-1].name)
            return found[-1]
    raise DatasetError(f"no CASME II coding file ({' or '.join(CODING_PATTERNS)}) in "
                       f"{' or '.join(str(f) for f in folders)}; name one with -D coding=PATH")


def _has_subject_folders(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_dir() and re.match(r"^sub\d+$", p.name, re.I) for p in folder.iterdir())


def find_frames_root(root: Path, extra: Mapping[str, Any] | None = None) -> Path:
    """The folder holding ``subNN/``: ``extra["frames"]`` if given, else the first of
    :data:`FRAME_FOLDERS` under ``root``, else ``root`` itself when it holds ``subNN`` folders."""
    extra = extra or {}
    if extra.get("frames"):
        p = root / str(extra["frames"])
        if not p.is_dir():
            raise DatasetError(f"frames folder {p} (-D frames=NAME) not found")
        return p
    for name in FRAME_FOLDERS:
        if (root / name).is_dir():
            return root / name
    if _has_subject_folders(root):
        return root
    raise DatasetError(f"no CASME II frame folder under {root}: expected one of {list(FRAME_FOLDERS)} "
                       f"or subNN folders directly in it")


def normalize_subject(value: Any) -> str:
    """``1``, ``1.0``, ``"01"``, ``"sub01"`` -> ``"sub01"``."""
    return f"sub{subject_number(value, _SUBJECT_RE, 'a subject number or subNN'):02d}"


def subject_number(value: Any, pattern: re.Pattern[str], what: str) -> int:
    """The number in a sheet's Subject cell (an int, a whole float, or text that ``pattern``'s
    first group takes the number from); ValueError saying the cell is not ``what``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    m = pattern.match(str(value if value is not None else "").strip())
    if not m:
        raise ValueError(f"Subject {value!r} is not {what}")
    return int(m.group(1))


def _frame_number(value: Any, column: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{column} {value!r} is not a frame number")
    if isinstance(value, (int,)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value if value is not None else "").strip()
    try:
        f = float(text)
    except ValueError:
        raise ValueError(f"{column} {value!r} is not a frame number") from None
    if not f.is_integer():
        raise ValueError(f"{column} {value!r} is not a whole frame number")
    return int(f)


def _clip_name(value: Any) -> str:
    name = str(value if value is not None else "").strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name or ":" in name:
        raise ValueError(f"Filename {value!r} is not a clip folder name")
    return name


def list_frames(clip_dir: Path) -> Frames:
    """``(N, path)`` of the ``imgN.jpg`` (or ``reg_imgN.jpg``) files of a clip, sorted by N."""
    frames = []
    with os.scandir(clip_dir) as it:
        for entry in it:
            m = _FRAME_RE.match(entry.name)
            if m and entry.is_file():
                frames.append((int(m.group(1)), Path(entry.path)))
    frames.sort(key=lambda t: t[0])
    return frames


CodingRow = tuple[str, str, str, int, int | None, int]


@dataclass(frozen=True)
class CodingSheet:
    """How a corpus's coding sheet names subjects, emotions, an unknown apex and its frame columns
    (``columns``: onset, apex, offset, as the messages name them)."""

    emotions: frozenset[str]
    unknown_apex: frozenset[str]
    subject: Callable[[Any], str]
    columns: tuple[str, str, str] = ("OnsetFrame", "ApexFrame", "OffsetFrame")

    def row(self, rec: Mapping[str, Any], seen: dict[tuple[str, str], int]) -> CodingRow:
        """(subject, clip, emotion, onset, apex or None, offset) of one row, checked; ``seen`` maps
        the (subject, clip) pairs read so far to their rows and gets this one. Raises ValueError
        saying what is wrong (unknown emotion, a bad frame number, frames out of order, a repeat)."""
        on_col, ap_col, off_col = self.columns
        subject = self.subject(rec["subject"])
        clip = _clip_name(rec["filename"])
        emotion = str(rec["emotion"] if rec["emotion"] is not None else "").strip().lower()
        if emotion not in self.emotions:
            raise ValueError(f"unknown emotion {rec['emotion']!r} (expected one of {sorted(self.emotions)})")
        onset_n, offset_n = _frame_number(rec["onset"], on_col), _frame_number(rec["offset"], off_col)
        apex_raw = rec["apex"]
        apex_n = None if str(apex_raw if apex_raw is not None else "").strip().lower() in self.unknown_apex \
            else _frame_number(apex_raw, ap_col)
        if onset_n > offset_n:
            raise ValueError(f"{on_col} {onset_n} is after {off_col} {offset_n}")
        if apex_n is not None and not onset_n <= apex_n <= offset_n:
            raise ValueError(f"{ap_col} {apex_n} is outside {on_col}..{off_col} {onset_n}..{offset_n}")
        if (subject, clip) in seen:
            raise ValueError(f"{subject}/{clip} already listed in row {seen[subject, clip]}")
        seen[subject, clip] = rec["_row"]
        return subject, clip, emotion, onset_n, apex_n, offset_n


CASME2_SHEET = CodingSheet(EMOTIONS, frozenset(UNKNOWN_APEX), normalize_subject)
#: the options :func:`load_casme2_tree` reads
TREE_OPTIONS = ("coding", "frames", "sparse_frames", "all_emotions")


def keep_all_emotions(extra: Mapping[str, Any], dataset: str) -> bool:
    """Option ``all_emotions``: also return clips whose emotion is in no class of the task (their
    ``labels`` lack it), for self-supervised use such as MoExt's pre-training; never for a
    classification run, whose samples all need the task's label."""
    value = extra.get("all_emotions", False)
    if not isinstance(value, bool):
        raise DatasetError(f"dataset {dataset!r}: option all_emotions must be true or false, got {value!r}")
    return value


def load_casme2_tree(root: Path | str, options: LoadOptions, dataset_name: str = "casme2", *,
                     excluded: Iterable[tuple[str, str]] | None = None, fps: float = FPS,
                     tasks: Mapping[str, LabelSet] | None = None) -> LoadedDataset:
    """Read a CASME II-layout tree into the samples of ``options.task`` (default ``megc3``).

    Args:
        root: data root (see the module docstring for the accepted layouts).
        options: ``task``, ``skip_invalid``; ``extra`` may hold ``coding`` (sheet to use),
            ``frames`` (frame folder name under root), ``sparse_frames`` (accept clip folders
            that hold only some of their frames; without it a missing frame is an error) and
            ``all_emotions`` (see :func:`keep_all_emotions`).
        dataset_name: ``Sample.dataset`` of the samples (``"synthetic"`` for the generated corpus).
        excluded: (subject, clip) pairs left out of ``megc3``; default: the three official MEGC2019
            exclusions for ``casme2``, none for other names.
        fps: ``Sample.fps``.
        tasks: task name -> label set; default ``megc3`` and ``sde5`` (CASME II rules).

    Raises:
        DatasetError: naming the file and spreadsheet row, unless ``options.skip_invalid`` (then the
            row is left out and described in ``LoadedDataset.skipped``).
    """
    root = data_root(root)
    tasks = dict(tasks or {"megc3": MEGC3, "sde5": CASME2_SDE5})
    task = choose_task(dataset_name, tasks, options.task)
    if excluded is None:
        excluded = MEGC2019_CASME2_EXCLUDED if dataset_name == "casme2" else ()
    excluded = {(normalize_subject(s), c) for s, c in excluded}
    extra = options.extra or {}
    sparse = extra.get("sparse_frames") in (True, "true", "yes", 1)
    coding = find_coding_file(root, extra)
    frames_root = find_frames_root(root, extra)
    rules = {"megc3": MEGC3_RULES, "sde5": SDE5_RULES}
    all_emotions = keep_all_emotions(extra, dataset_name)
    seen: dict[tuple[str, str], int] = {}

    def read(rec: dict[str, Any]) -> Sample | None:
        subject, clip, emotion, onset_n, apex_n, offset_n = CASME2_SHEET.row(rec, seen)
        labels: dict[str, int] = {}
        for name, ls in tasks.items():
            if name == "megc3" and (subject, clip) in excluded:
                continue
            idx = map_emotion("casme2", emotion, rules.get(name, {}), ls)
            if idx is not None:
                labels[name] = idx
        if task not in labels and not all_emotions:
            return None  # not part of the requested task: left out, not an error

        clip_dir = frames_root / subject / clip
        frames = check_clip_dir(clip_dir, frames_root, list_frames, "imgN.jpg")
        pos = frame_positions(frames, clip_dir, {"OnsetFrame": onset_n, "ApexFrame": apex_n,
                                                 "OffsetFrame": offset_n}, prefix="img")
        numbers = [n for n, _ in frames]
        holes = [] if sparse else sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        if holes:  # a deleted frame changes what sequence methods see between onset and offset
            named = ", ".join(f"img{n}" for n in holes[:5]) + (f" and {len(holes) - 5} more" if len(holes) > 5 else "")
            raise ValueError(f"{clip_dir} misses frame(s) {named} ({frame_span(frames, 'img')}); "
                             "-D sparse_frames=true accepts clip folders that hold only some frames")
        onset, apex_at, offset = pos["OnsetFrame"], pos["ApexFrame"], pos["OffsetFrame"]
        assert onset is not None and offset is not None  # their frame numbers are never None
        apex = apex_at if apex_at is not None else (onset + offset) // 2  # apex_at is None iff apex_n is
        if apex_n is None:
            log.info("%s row %s: apex %r unknown, using the midpoint frame img%d", coding, rec["_row"], rec["apex"],
                     numbers[apex])
        return Sample(dataset=dataset_name, subject=subject, clip=clip, frames=tuple(p for _, p in frames),
                      onset=onset, apex=apex, offset=offset, emotion=emotion, labels=labels, fps=fps,
                      frame_numbers=tuple(numbers))

    skipped: list[str] = []
    samples = collect_samples(read_coding_table(coding), read, describe_row, options, skipped)
    samples.sort(key=lambda s: (s.subject, s.clip))
    return LoadedDataset(name=dataset_name, task=task, labels=tasks[task], samples=samples, skipped=skipped)


class Casme2Dataset(Dataset):
    """CASME II (raw selected or cropped release) with its coding spreadsheet."""

    name = "casme2"
    options = TREE_OPTIONS
    description = "CASME II: CASME2_RAW_selected/subNN/<clip>/imgN.jpg + CASME2-coding-*.xlsx (200 fps)"
    tasks = {"megc3": MEGC3, "sde5": CASME2_SDE5}

    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        root = self.need_root(root, "the folder with CASME2_RAW_selected/ and CASME2-coding-*.xlsx")
        return load_casme2_tree(root, options, "casme2", tasks=self.tasks)
