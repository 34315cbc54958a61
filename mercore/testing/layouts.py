"""Writers of small synthetic trees in each real corpus layout (spreadsheets included).

They let the real adapters be tested end to end without the corpora: subjects, clip names and
frame indices come from the real annotation tables (``../shared/data/annotations`` or any
folder with the same files), frames are tiny placeholder images (``image="tiny"``, fast) or faces
and facial actions rendered by :mod:`mercore.data.synthetic` (``image="face"``). Only a few frames
per clip are written (onset, apex, offset and evenly spaced ones between, ``frames_per_clip``;
``None`` writes every frame).

Facts the tables do not give, settled here: SAMM's 23 composite clips that are missing from the
5-class list (disgust 9, fear 8, sadness 6 in the real corpus) get placeholder frames 101/121/141
and those emotions in GT order; SAMM's "others" class is written as ``Other``; SMIC's middle
column is written as the apex frame only to be one of the frames on disk (SMIC has no apex).
"""
from __future__ import annotations

import csv
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from ..data.synthetic import ClipSpec, Face, make_face, render_clip
from ..data.synthetic.plan import pick_actions, seeded_rng

CASME2_CLASSES = {"1": "happiness", "2": "surprise", "3": "disgust", "4": "repression", "5": "others"}
SAMM_CLASSES = {"1": "Anger", "2": "Contempt", "3": "Happiness", "4": "Surprise", "5": "Other"}
SMIC_CLASSES = {"1": "positive", "2": "negative", "3": "surprise"}
SAMM_EXTRA_EMOTIONS = ["Disgust"] * 9 + ["Fear"] * 8 + ["Sadness"] * 6
#: corpus emotion -> the synthetic generator's class whose facial actions are rendered
RENDER_CLASS = {"negative": "disgust", "positive": "happiness", "anger": "disgust", "contempt": "repression",
                "disgust": "disgust", "fear": "disgust", "sadness": "repression", "sad": "repression",
                "happiness": "happiness", "happy": "happiness", "surprise": "surprise", "repression": "repression"}
SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
               "Type", "Action Units", "Notes", "Estimated Emotion"]
CASME2_HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]


def shared_annotations() -> Path:
    """``<repo parent>/shared/data/annotations`` (where the project keeps the real tables)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "annotations"


def read_table(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [[c.strip() for c in r] for r in csv.reader(f) if any(c.strip() for c in r)]


def pick_frames(onset: int, apex: int, offset: int, frames_per_clip: int | None) -> list[int]:
    """Frame numbers to write: all of onset..offset, or onset/apex/offset plus evenly spaced ones."""
    if frames_per_clip is None or offset - onset + 1 <= frames_per_clip:
        return list(range(onset, offset + 1))
    keep = {onset, apex, offset}
    extra = max(frames_per_clip - len(keep), 0)
    keep.update(int(round(v)) for v in np.linspace(onset, offset, extra + 2)[1:-1])
    return sorted(keep)


@lru_cache(maxsize=8)
def _tiny(suffix: str, size: int) -> bytes:
    ok, buf = cv2.imencode(suffix, np.full((size, size, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


class FrameWriter:
    """Writes a clip's frames: tiny grey placeholders or rendered synthetic faces."""

    def __init__(self, image: str = "tiny", size: int = 64, seed: int = 0) -> None:
        if image not in ("tiny", "face"):
            raise ValueError(f"image must be 'tiny' or 'face', got {image!r}")
        self.image, self.size, self.seed = image, int(size), int(seed)
        self._faces: dict[str, Face] = {}

    def write(self, folder: Path, names: Sequence[str], numbers: Sequence[int], subject: str, clip: str,
              emotion: str, onset: int, apex: int, offset: int) -> None:
        """``names[i]`` is the file of frame ``numbers[i]``; onset/apex/offset are frame numbers."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.image == "tiny":
            for name in names:
                (folder / name).write_bytes(_tiny(Path(name).suffix, 8))
            return
        if subject not in self._faces:
            self._faces[subject] = make_face(len(self._faces), self.size, self.seed)
        pos = {n: i for i, n in enumerate(numbers)}
        key = abs(hash((subject, clip))) % (2**31)
        rng = seeded_rng(self.seed, key)
        cls = RENDER_CLASS.get(emotion.lower(), "others")
        spec = ClipSpec(subject=subject, clip=clip, emotion=cls, n_frames=len(numbers), onset=pos[onset],
                        apex=pos[apex], offset=pos[offset], start_number=numbers[0],
                        actions=pick_actions(rng, cls), peak_px=2.0 * self.size / 128, seed=key)
        for name, data in zip(names, render_clip(self._faces[subject], spec)):
            path = folder / name
            if path.suffix.lower() == ".jpg":
                path.write_bytes(data)
            else:
                img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                assert img is not None  # render_clip encodes valid JPEGs
                cv2.imwrite(str(path), img)


def _xlsx(path: Path, header: list[str], rows: Iterable[Sequence[object]], title_rows: int = 0) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None  # a new workbook has one worksheet, the active one
    for i in range(title_rows):
        ws.append(["SAMM Micro-Movement FACS Codes (synthetic layout copy)"] if i == 0 else [])
    ws.append(header)
    for r in rows:
        ws.append(list(r))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_casme2(root: Path, annotations: Path | None = None, frames_per_clip: int | None = 3,
                 writer: FrameWriter | None = None, sheet: str = "CASME2-coding-20190701.xlsx") -> Path:
    """CASME II layout from ``casme2_5class_frames.csv``: CASME2_RAW_selected/subNN/<clip>/imgN.jpg + sheet."""
    annotations, writer = annotations or shared_annotations(), writer or FrameWriter()
    rows = []
    for sub, clip, on_s, ap_s, off_s, cls in read_table(annotations / "casme2_5class_frames.csv"):
        on, ap, off = int(on_s), int(ap_s), int(off_s)
        emotion = CASME2_CLASSES[cls]
        numbers = pick_frames(on, ap, off, frames_per_clip)
        writer.write(root / "CASME2_RAW_selected" / sub / clip, [f"img{n}.jpg" for n in numbers], numbers,
                     sub, clip, emotion, on, ap, off)
        rows.append([int(sub[3:]), clip, on, ap, off, "", emotion])
    _xlsx(root / sheet, CASME2_HEADER, rows)
    return root


def samm_rows(annotations: Path) -> list[tuple[str, str, int, int, int, str]]:
    """(subject, clip, onset, apex, offset, emotion): the 5-class list plus the composite's other clips."""
    out = [(s, c, int(a), int(b), int(d), SAMM_CLASSES[k])
           for s, c, a, b, d, k in read_table(annotations / "samm_5class_frames.csv")]
    have = {(s, c) for s, c, *_ in out}
    gt = [(f"{int(r[1]):03d}", r[2]) for r in read_table(annotations / "megc2019_combined_3class_gt.csv")
          if r[0] == "samm"]
    missing = [k for k in gt if k not in have]
    for (s, c), emotion in zip(missing, SAMM_EXTRA_EMOTIONS):
        out.append((s, c, 101, 121, 141, emotion))
    return out


def write_samm(root: Path, annotations: Path | None = None, frames_per_clip: int | None = 3,
               writer: FrameWriter | None = None, odd_naming: Iterable[str] = ("006_1_3",)) -> Path:
    """SAMM layout: SAMM/<subject>/<clip>/<subject>_<05d frame>.jpg + SAMM_Micro_FACS_Codes_v2.xlsx
    (12 title rows above the header, subjects written as numbers). Clips in ``odd_naming`` use
    ``img<N>.jpg`` names, like the handful of differently named real clips."""
    annotations, writer = annotations or shared_annotations(), writer or FrameWriter()
    odd = set(odd_naming)
    rows = []
    for sub, clip, on, ap, off, emotion in samm_rows(annotations):
        numbers = pick_frames(on, ap, off, frames_per_clip)
        names = [f"img{n}.jpg" if clip in odd else f"{sub}_{n:05d}.jpg" for n in numbers]
        writer.write(root / "SAMM" / sub / clip, names, numbers, sub, clip, emotion, on, ap, off)
        rows.append([int(sub), clip, "", on, ap, off, off - on + 1, "Micro - 1/2", "", "", emotion])
    _xlsx(root / "SAMM_Micro_FACS_Codes_v2.xlsx", SAMM_HEADER, rows, title_rows=12)
    return root


def write_smic(root: Path, annotations: Path | None = None, frames_per_clip: int | None = 3,
               writer: FrameWriter | None = None) -> Path:
    """SMIC-HS layout: HS/sN/micro/<emotion>/sN_xx_NN/image<frame>.bmp (subject s1 on disk, s01 in the GT)."""
    annotations, writer = annotations or shared_annotations(), writer or FrameWriter()
    for sub, clip, first_s, mid_s, last_s, cls in read_table(annotations / "smic_3class_frames.csv"):
        first, mid, last = int(first_s), int(mid_s), int(last_s)
        disk_sub = f"s{int(sub[1:])}"
        disk_clip = disk_sub + clip[len(sub):]
        numbers = pick_frames(first, mid, last, frames_per_clip)
        writer.write(root / "HS" / disk_sub / "micro" / SMIC_CLASSES[cls] / disk_clip,
                     [f"image{n}.bmp" for n in numbers], numbers, sub, clip, SMIC_CLASSES[cls], first, mid, last)
    return root


def write_casme3(root: Path, annotations: Path | None = None, frames_per_clip: int | None = 3,
                 writer: FrameWriter | None = None, subjects: Iterable[str] | None = None,
                 macro_rows: int = 0) -> Path:
    """CAS(ME)^3 part A: the v2 label sheet copied as distributed and ``spNO.N/<letter>/color/<N>.jpg``
    frames for its rows (only ``subjects`` if given; rows with offset before onset get none).
    ``macro_rows > 0`` also writes a macro sheet (``*MaE_label*.xlsx``) with that many rows per
    recording letter used, 60 frames long, their frames all written up to the 5th."""
    import openpyxl

    annotations, writer = annotations or shared_annotations(), writer or FrameWriter()
    src = annotations / "casme3_partA_ME_label_JpgIndex_v2.xlsx"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, root / src.name)
    wb = openpyxl.load_workbook(src, read_only=True, data_only=True)
    rows: list[tuple[Any, ...]] = [tuple(r) for r in wb.worksheets[0].iter_rows(values_only=True)][1:]  # cell values
    wb.close()
    wanted = set(subjects) if subjects is not None else None
    letters = []
    for sub, letter, on, ap, off, _au, _obj, emotion in rows:
        if wanted is not None and sub not in wanted:
            continue
        on, ap, off = int(on), int(ap), int(off)
        if off < on:
            continue
        apex = ap if on <= ap <= off else on
        numbers = pick_frames(on, apex, off, frames_per_clip)
        folder = root / "data" / "part_A" / sub / letter / "color"
        writer.write(folder, [f"{n}.jpg" for n in numbers], numbers, sub, f"{letter}_{on}", emotion, on, apex, off)
        if (sub, letter) not in letters:
            letters.append((sub, letter))
    if macro_rows:
        mrows = []
        for sub, letter in letters:
            for k in range(macro_rows):
                on = 100_000 + 1000 * k
                numbers = sorted(set(range(on, on + 5)) | {on + 20, on + 60})
                writer.write(root / "data" / "part_A" / sub / letter / "color", [f"{n}.jpg" for n in numbers],
                             numbers, sub, f"{letter}_{on}", "happy", on, on + 20, on + 60)
                mrows.append([sub, letter, str(on), str(on + 20), str(on + 60), "12", "I", "happy"])
        _xlsx(root / "casme3_partA_MaE_label_JpgIndex_v2.xlsx",
              ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"], mrows)
    return root


def write_megc2019(root: Path, annotations: Path | None = None, frames_per_clip: int | None = 3,
                   writer: FrameWriter | None = None) -> Path:
    """The composite's three corpora: root/CASME2, root/SAMM (+ sheet in root), root/SMIC/HS."""
    write_casme2(root / "CASME2", annotations, frames_per_clip, writer)
    write_samm(root, annotations, frames_per_clip, writer)
    write_smic(root / "SMIC", annotations, frames_per_clip, writer)
    return root


def write_flow_release(root: Path, rows: Iterable[tuple[str, str, str, int]]) -> Path:
    """A precomputed-flow release: labels.csv + apex/<subject>_<clip>.jpg (224) + u_v_os/... .png (28)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset", "subject", "clip", "label"])
        w.writerows(rows)
    for i, (_ds, sub, clip, _label) in enumerate(rows):
        rng = np.random.default_rng(i)
        (root / "apex").mkdir(exist_ok=True)
        (root / "u_v_os").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "apex" / f"{sub}_{clip}.jpg"), rng.integers(0, 255, (224, 224, 3), np.uint8))
        cv2.imwrite(str(root / "u_v_os" / f"{sub}_{clip}.png"), rng.integers(0, 255, (28, 28, 3), np.uint8))
    return root
