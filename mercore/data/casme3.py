"""CAS(ME)^3 part A adapter: the label sheets as distributed and the colour frames.

Layout::

    <root>/.../spNO.N/<clip letter>/color/<frame>.jpg       (the folder holding spNO.* is searched
                                                             up to 3 levels down, or -D frames=PATH)
    <root>/casme3_partA_ME_label_JpgIndex_v2.xlsx           (any *ME_label*.xlsx; -D labels=PATH)
    <root>/*MaE_label*.xlsx                                 (macro-expressions; -D macro_labels=PATH)

Columns: Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion (numbers are stored
as text in the v2 sheet). One ``spNO.N/<letter>`` recording holds several expressions, so a clip is
``<letter>_<onset>`` (``b_166``) and its ``frames`` are the recording's frames from onset to offset.

3-class rule (option ``rule``), stated in every run since there is no settled CAS(ME)^3 set:

* ``default``: negative = disgust + fear + anger + sad, positive = happy, surprise = surprise,
  others dropped -> 699 clips (457 / 55 / 187) over 88 subjects on the v2 sheet.
* ``htnet``: the public 687-clip edit used by HTNet: the rows of ``casme3_partA_edited_htnet.csv``
  when that file is found (option ``htnet_csv``, or beside the sheet) with its ``label_for_3``
  checked against the default mapping; otherwise the default rule minus the 12 rows that edit
  removes (:data:`HTNET_REMOVED`: all of spNO.217 and 6 rows of spNO.9 / spNO.186) -> 687
  (449 / 54 / 184) over 87 subjects.

Option ``kind: micro|macro``: macro-expressions from the macro sheet, with the 5th frame of the
sample (onset + 4; MoExt's pseudo-apex, "the 5th frame" counting the onset as the 1st) as apex.
Macro rows whose emotion maps to no class are kept only when the sheet has no emotion column
(then ``labels`` is empty: for self-supervised pre-training, not for a classification run), or
with option ``all_emotions: true``, which keeps every micro or macro row whatever its emotion
(MoExt pre-trains on all of them; see :func:`mercore.data.casme2.keep_all_emotions`).

Quirks: one v2 row (spNO.149/d, onset 112, apex 83) has its apex outside onset..offset; the apex
is then taken as the midpoint (logged), since the row's onset/offset are plausible. Rows outside
the requested task are not validated beyond their emotion (two ``others`` rows have offset 0).
"""
from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Any, Mapping

from ..labels import MEGC3, LabelSet
from ..sample import Sample
from .casme2 import _frame_number, _norm_header, describe_row, keep_all_emotions
from .dataset import Dataset, DatasetError, LoadedDataset, LoadOptions, choose_task, collect_samples, data_root
from .folders import check_clip_dir, frame_positions, option_path

log = logging.getLogger(__name__)

FPS = 30.0
EMOTIONS = frozenset({"disgust", "surprise", "others", "fear", "anger", "sad", "happy"})
RULE_DEFAULT = {"disgust": "negative", "fear": "negative", "anger": "negative", "sad": "negative",
                "happy": "positive", "surprise": "surprise"}
RULES = ("default", "htnet")
KINDS = ("micro", "macro")
#: (subject, filename, onset) rows of the v2 sheet that the HTNet 687-clip edit leaves out.
HTNET_REMOVED = frozenset({
    ("spNO.186", "f", 448), ("spNO.186", "l", 3634), ("spNO.186", "l", 3677), ("spNO.217", "a", 233),
    ("spNO.217", "c", 2302), ("spNO.217", "g", 739), ("spNO.217", "k", 1412), ("spNO.217", "l", 164),
    ("spNO.217", "l", 3201), ("spNO.9", "g", 234), ("spNO.9", "g", 980), ("spNO.9", "h", 4)})
HTNET_CSV = "casme3_partA_edited_htnet.csv"
MACRO_PSEUDO_APEX = 5  # the N-th frame of a macro sample stands in for its apex (MoExt)
COLUMNS = {"subject": "subject", "filename": "filename", "onset": "onset", "apex": "apex", "offset": "offset",
           "au": "au", "objectiveclass": "objective", "emotion": "emotion"}
_SUBJECT = re.compile(r"^spNO\.\d+$")
_LETTER = re.compile(r"^[A-Za-z]$")


def read_label_sheet(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Rows of a CAS(ME)^3 label sheet (first worksheet; ``.xlsx`` or ``.csv``) and whether it has
    an emotion column. Each row: the keys of :data:`COLUMNS` present plus ``_row`` and ``_file``."""
    rows: list[tuple[Any, ...]]  # raw cell values
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = [tuple(r) for r in csv.reader(f)]
        else:
            import openpyxl

            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
            try:
                rows = [tuple(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
            finally:
                wb.close()
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read label sheet ({type(exc).__name__}: {exc})") from exc
    header_at = next((i for i, r in enumerate(rows[:20])
                      if {"subject", "filename", "onset"} <= {_norm_header(c) for c in r}), None)
    if header_at is None:
        raise DatasetError(f"{path}: no header row with Subject, Filename, Onset in the first 20 rows")
    index: dict[str, int] = {}
    for j, cell in enumerate(rows[header_at]):
        key = COLUMNS.get(_norm_header(cell))
        if key and key not in index:
            index[key] = j
    missing = [k for k in ("subject", "filename", "onset", "apex", "offset") if k not in index]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing} in header row {header_at + 1}")
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows[header_at + 1:], start=header_at + 2):
        if all(c is None or str(c).strip() == "" for c in row):
            continue
        rec: dict[str, Any] = {k: (row[j] if j < len(row) else None) for k, j in index.items()}
        rec["_row"], rec["_file"] = i, str(path)
        out.append(rec)
    return out, "emotion" in index


def _find(root: Path, patterns: tuple[str, ...], exclude: str | None = None) -> Path | None:
    for folder in (root, root.parent):
        found = sorted(p for pat in patterns for p in folder.glob(pat)
                       if p.is_file() and not (exclude and exclude.lower() in p.name.lower()))
        if found:
            return found[-1]
    return None


def find_frames_root(root: Path, extra: Mapping[str, Any]) -> Path:
    """The folder holding ``spNO.*`` (option ``frames``, else searched up to 3 levels below root)."""
    given = option_path(root, extra, "frames", folder=True)
    if given is not None:
        return given
    level = [root]
    for _ in range(4):
        for folder in level:
            if any(p.is_dir() and _SUBJECT.match(p.name) for p in folder.iterdir()):
                return folder
        level = sorted(p for f in level for p in f.iterdir() if p.is_dir() and not p.name.startswith("."))
    raise DatasetError(f"no folder with spNO.* subject folders found within 3 levels of {root} "
                       f"(name it with -D frames=PATH)")


def _htnet_rows(path: Path) -> dict[tuple[str, str, int], int]:
    out: dict[tuple[str, str, int], int] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                out[(row["Subject"].strip(), row["Filename"].strip(), int(row["Onset"]))] = int(row["label_for_3"])
            except (KeyError, ValueError, AttributeError) as exc:
                raise DatasetError(f"{path} row {i}: malformed HTNet edit row ({exc})") from None
    return out


def load_casme3(root: Path | str, options: LoadOptions) -> LoadedDataset:
    """Read CAS(ME)^3 part A into the samples of ``options.task`` (``megc3``).

    Raises:
        DatasetError: naming the sheet and row, unless ``options.skip_invalid``.
    """
    root = data_root(root)
    task = choose_task("casme3", Casme3Dataset.tasks, options.task)
    label_set: LabelSet = Casme3Dataset.tasks[task]
    extra = dict(options.extra or {})
    rule, kind = str(extra.get("rule", "default")), str(extra.get("kind", "micro"))
    if rule not in RULES:
        raise DatasetError(f"dataset 'casme3': option rule={rule!r}; choose one of {RULES}")
    if kind not in KINDS:
        raise DatasetError(f"dataset 'casme3': option kind={kind!r}; choose one of {KINDS}")
    if kind == "micro":
        sheet = option_path(root, extra, "labels", folder=False) or \
            _find(root, ("*ME_label*.xlsx", "*ME_label*.csv"), exclude="MaE")
    else:
        sheet = option_path(root, extra, "macro_labels", folder=False) or \
            _find(root, ("*MaE_label*.xlsx", "*MaE_label*.csv", "*macro*label*.xlsx"))
    if sheet is None:
        what = "micro-expression (*ME_label*.xlsx)" if kind == "micro" else "macro-expression (*MaE_label*.xlsx)"
        raise DatasetError(f"no CAS(ME)^3 {what} label sheet in {root} or its parent; pass option "
                           f"'{'labels' if kind == 'micro' else 'macro_labels'}'")
    frames_root = find_frames_root(root, extra)
    all_emotions = keep_all_emotions(extra, "casme3")
    htnet: dict[tuple[str, str, int], int] | None = None
    if rule == "htnet" and kind == "micro":
        csv_path = option_path(root, extra, "htnet_csv", folder=False) or \
            next((p for p in (sheet.parent / HTNET_CSV, root / HTNET_CSV) if p.is_file()), None)
        htnet = _htnet_rows(csv_path) if csv_path else None

    records, has_emotion = read_label_sheet(sheet)
    seen: dict[tuple[str, str, int], int] = {}

    def read(rec: dict[str, Any]) -> Sample | None:
        subject = str(rec["subject"] or "").strip()
        if not _SUBJECT.match(subject):
            raise ValueError(f"Subject {rec['subject']!r} is not spNO.<n>")
        letter = str(rec["filename"] or "").strip()
        if not _LETTER.match(letter):
            raise ValueError(f"Filename {rec['filename']!r} is not a recording letter")
        emotion = str(rec.get("emotion") or "").strip().lower()
        if has_emotion and emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {rec.get('emotion')!r} (expected one of {sorted(EMOTIONS)})")
        onset_n = _frame_number(rec["onset"], "Onset")
        key = (subject, letter, onset_n)
        target = RULE_DEFAULT.get(emotion)
        if htnet is not None:
            if key not in htnet:
                return None
            if target is None or label_set.index(target) != htnet[key]:
                raise ValueError(f"HTNet edit gives label_for_3 {htnet[key]} for emotion {emotion!r}")
        elif rule == "htnet" and kind == "micro" and key in HTNET_REMOVED:
            return None
        labels = {task: label_set.index(target)} if target is not None else {}
        if not labels and not all_emotions and (kind == "micro" or has_emotion):
            return None  # not part of the task
        offset_n = _frame_number(rec["offset"], "Offset")
        apex_n = _frame_number(rec["apex"], "Apex")
        if onset_n > offset_n:
            raise ValueError(f"Onset {onset_n} is after Offset {offset_n}")
        if key in seen:
            raise ValueError(f"{subject}/{letter} onset {onset_n} already listed in row {seen[key]}")
        seen[key] = rec["_row"]
        clip_dir = frames_root / subject / letter / "color"
        if not clip_dir.is_dir() and (frames_root / subject / letter.lower() / "color").is_dir():
            clip_dir = frames_root / subject / letter.lower() / "color"
        frames = [(n, p) for n, p in check_clip_dir(clip_dir, frames_root) if onset_n <= n <= offset_n]
        if not frames:
            raise ValueError(f"no frames {onset_n}..{offset_n} in {clip_dir}")
        pos = frame_positions(frames, clip_dir, {"Onset": onset_n, "Offset": offset_n})
        onset, offset = pos["Onset"], pos["Offset"]
        assert onset is not None and offset is not None  # onset_n and offset_n are frame numbers
        if kind == "macro":
            apex = min(onset + MACRO_PSEUDO_APEX - 1, offset)
        elif onset_n <= apex_n <= offset_n:
            apex_at = frame_positions(frames, clip_dir, {"Apex": apex_n})["Apex"]
            assert apex_at is not None  # apex_n is a frame number
            apex = apex_at
        else:
            apex = (onset + offset) // 2
            log.warning("%s row %s: Apex %d outside Onset..Offset %d..%d; using the midpoint", sheet, rec["_row"],
                        apex_n, onset_n, offset_n)
        return Sample(dataset="casme3", subject=subject, clip=f"{letter}_{onset_n}",
                      frames=tuple(p for _, p in frames), onset=onset, apex=apex, offset=offset, emotion=emotion,
                      labels=labels, fps=FPS, frame_numbers=tuple(n for n, _ in frames))

    skipped: list[str] = []
    samples = collect_samples(records, read, describe_row, options, skipped)
    samples.sort(key=lambda s: (int(s.subject.split(".")[1]), s.clip))
    return LoadedDataset(name="casme3", task=task, labels=label_set, samples=samples, skipped=skipped)


class Casme3Dataset(Dataset):
    """CAS(ME)^3 part A (30 fps), micro or macro; 3-class rule ``default`` or ``htnet``."""

    name = "casme3"
    options = ("rule", "kind", "labels", "macro_labels", "frames", "htnet_csv", "all_emotions")
    description = ("CAS(ME)^3 part A: spNO.N/<letter>/color/<frame>.jpg + *ME_label*.xlsx (30 fps); "
                   "-D rule=default|htnet, -D kind=micro|macro")
    tasks = {"megc3": MEGC3}

    def load(self, root: Path | None, options: LoadOptions) -> LoadedDataset:
        return load_casme3(self.need_root(root, "the folder with the label sheet and spNO.*"), options)
