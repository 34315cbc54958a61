"""CASME II adapter: layouts, coding sheets, validation errors, the MEGC2019 3-class mapping."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from mercore.data.casme2 import Casme2Dataset, load_casme2_tree, read_coding_table
from mercore.data.dataset import DatasetError, LoadOptions
from mercore.shared import shared_dir

HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
SHARED = shared_dir()
TINY = np.full((8, 8, 3), 128, np.uint8)
_JPG = cv2.imencode(".jpg", TINY)[1].tobytes()


def write_frames(folder: Path, numbers, prefix: str = "img") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"{prefix}{n}.jpg").write_bytes(_JPG)


def write_sheet(path: Path, rows, header=HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    else:
        import openpyxl

        wb = openpyxl.Workbook()
        wb.active.append(header)
        for r in rows:
            wb.active.append(list(r))
        wb.save(path)
    return path


GOOD_ROWS = [
    # Subject written three ways; numbers as ints and strings
    [1, "EP02_01f", 9, 11, 14, "12", "happiness"],
    ["02", "EP03_02", "20", "22", "25", "1+2", " Surprise "],
    ["sub03", "EP04_01", 5, 6, 8, "9+10", "disgust"],
    [3, "EP05_02", 30, 31, 33, "4", "others"],
    [2, "EP06_01f", 40, 42, 44, "24", "repression"],
]
FRAMES = {("sub01", "EP02_01f"): range(8, 16), ("sub02", "EP03_02"): range(20, 26),
          ("sub03", "EP04_01"): range(5, 9), ("sub03", "EP05_02"): range(30, 34),
          ("sub02", "EP06_01f"): range(40, 45)}


def make_tree(root: Path, rows=GOOD_ROWS, frames=FRAMES, folder="CASME2_RAW_selected",
              sheet="CASME2-coding-20190701.xlsx", prefix="img") -> Path:
    for (sub, clip), numbers in frames.items():
        write_frames(root / folder / sub / clip if folder else root / sub / clip, numbers, prefix)
    write_sheet(root / sheet, rows)
    return root


def test_good_tree_megc3(tmp_path):
    make_tree(tmp_path)
    ds = Casme2Dataset().load(tmp_path, LoadOptions(task="megc3"))
    assert ds.task == "megc3" and ds.skipped == []
    assert [s.key for s in ds.samples] == ["casme2/sub01/EP02_01f", "casme2/sub02/EP03_02",
                                           "casme2/sub02/EP06_01f", "casme2/sub03/EP04_01"]
    s = ds.samples[0]
    # img8..img15 sorted numerically (img8 before img10); onset 9 -> position 1
    assert s.frame_numbers == tuple(range(8, 16))
    assert [p.name for p in s.frames][:3] == ["img8.jpg", "img9.jpg", "img10.jpg"]
    assert (s.onset, s.apex, s.offset) == (1, 3, 6)
    assert s.frame_numbers[s.apex] == 11
    assert s.labels == {"megc3": 1, "sde5": 0} and s.emotion == "happiness"
    assert s.fps == 200 and s.dataset == "casme2" and s.subject == "sub01"
    labels = {x.clip: x.labels for x in ds.samples}
    assert labels["EP03_02"] == {"megc3": 2, "sde5": 1}
    assert labels["EP04_01"] == {"megc3": 0, "sde5": 2}
    assert labels["EP06_01f"] == {"megc3": 0, "sde5": 3}


def test_sde5_keeps_others(tmp_path):
    make_tree(tmp_path)
    ds = Casme2Dataset().load(tmp_path, LoadOptions(task="sde5"))
    assert len(ds.samples) == 5
    others = next(s for s in ds.samples if s.clip == "EP05_02")
    assert others.labels == {"sde5": 4}


def test_all_emotions_keeps_clips_outside_the_task(tmp_path):
    make_tree(tmp_path)
    ds = Casme2Dataset().load(tmp_path, LoadOptions(task="megc3", extra={"all_emotions": True}))
    assert len(ds.samples) == 5
    others = next(s for s in ds.samples if s.clip == "EP05_02")
    assert others.labels == {"sde5": 4} and "megc3" not in others.labels
    with pytest.raises(DatasetError, match="all_emotions must be true or false"):
        Casme2Dataset().load(tmp_path, LoadOptions(extra={"all_emotions": "yes"}))


def test_unknown_task(tmp_path):
    make_tree(tmp_path)
    with pytest.raises(DatasetError, match="no task"):
        Casme2Dataset().load(tmp_path, LoadOptions(task="nope"))


def test_apex_slash_uses_midpoint(tmp_path):
    rows = [["04", "EP12_02f", 10, "/", 16, "", "surprise"]]
    make_tree(tmp_path, rows, {("sub04", "EP12_02f"): range(10, 17)})
    (s,) = Casme2Dataset().load(tmp_path, LoadOptions()).samples
    assert (s.onset, s.apex, s.offset) == (0, 3, 6)


def test_cropped_release_and_root_at_subject_folders(tmp_path):
    make_tree(tmp_path / "a", folder="Cropped", prefix="reg_img")
    assert len(Casme2Dataset().load(tmp_path / "a", LoadOptions()).samples) == 4
    make_tree(tmp_path / "b", folder="CASME2_Cropped")
    assert len(Casme2Dataset().load(tmp_path / "b", LoadOptions()).samples) == 4
    # root = folder holding subNN, sheet inside it
    make_tree(tmp_path / "c", folder=None)
    assert len(Casme2Dataset().load(tmp_path / "c", LoadOptions()).samples) == 4
    # root = CASME2_RAW_selected, sheet one level up
    make_tree(tmp_path / "d")
    assert len(Casme2Dataset().load(tmp_path / "d" / "CASME2_RAW_selected", LoadOptions()).samples) == 4


def test_csv_sheet_and_choice_of_coding_file(tmp_path):
    make_tree(tmp_path, sheet="CASME2-coding-20140508.csv")
    rows = GOOD_ROWS[:1]
    write_sheet(tmp_path / "CASME2-coding-20190701.xlsx", rows)  # newest-named wins
    assert len(Casme2Dataset().load(tmp_path, LoadOptions()).samples) == 1
    ds = Casme2Dataset().load(tmp_path, LoadOptions(extra={"coding": "CASME2-coding-20140508.csv"}))
    assert len(ds.samples) == 4


def test_no_coding_file(tmp_path):
    write_frames(tmp_path / "CASME2_RAW_selected" / "sub01" / "EP01", range(3))
    with pytest.raises(DatasetError, match=r"no CASME II coding file .*CASME2-coding"):
        Casme2Dataset().load(tmp_path, LoadOptions())


def test_no_root():
    with pytest.raises(DatasetError, match="needs a data root"):
        Casme2Dataset().load(None, LoadOptions())


BAD_CASES = {
    "missing folder": ([1, "EP99_01", 9, 11, 14, "", "happiness"], r"clip folder .*EP99_01 not found"),
    "frame outside clip": ([1, "EP02_01f", 9, 11, 30, "", "happiness"], r"OffsetFrame 30 is not among the frames"),
    "onset after offset": ([1, "EP02_01f", 14, 11, 9, "", "happiness"], r"OnsetFrame 14 is after OffsetFrame 9"),
    "unknown emotion": ([1, "EP02_01f", 9, 11, 14, "", "joy"], r"unknown emotion 'joy'"),
    "non-numeric frame": ([1, "EP02_01f", "nine", 11, 14, "", "happiness"], r"OnsetFrame 'nine' is not a frame number"),
    "bad subject": (["x1", "EP02_01f", 9, 11, 14, "", "happiness"], r"Subject 'x1'"),
    "path escaping root": ([1, "../../etc", 9, 11, 14, "", "happiness"], r"'../../etc' is not a clip folder name"),
    "apex outside onset..offset": ([1, "EP02_01f", 9, 15, 14, "", "happiness"], r"ApexFrame 15 is outside"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_row_names_file_and_row(tmp_path, case):
    row, pattern = BAD_CASES[case]
    make_tree(tmp_path, rows=[GOOD_ROWS[1], row])  # bad row is spreadsheet row 3
    with pytest.raises(DatasetError, match=r"CASME2-coding-20190701\.xlsx row 3 .*" + pattern):
        Casme2Dataset().load(tmp_path, LoadOptions(task="sde5"))


def test_symlink_escaping_root(tmp_path):
    outside = tmp_path / "outside"
    write_frames(outside, range(8, 16))
    root = make_tree(tmp_path / "root", rows=[[1, "EP02_01f", 9, 11, 14, "", "happiness"]], frames={})
    (root / "CASME2_RAW_selected" / "sub01").mkdir(parents=True)
    (root / "CASME2_RAW_selected" / "sub01" / "EP02_01f").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DatasetError, match=r"row 2 .*outside the data root"):
        Casme2Dataset().load(root, LoadOptions())


def test_missing_column(tmp_path):
    make_tree(tmp_path, rows=[])
    write_sheet(tmp_path / "CASME2-coding-20190701.xlsx", [], header=[h for h in HEADER if h != "ApexFrame"])
    with pytest.raises(DatasetError, match=r"CASME2-coding-20190701\.xlsx: missing required column.*ApexFrame"):
        Casme2Dataset().load(tmp_path, LoadOptions())


def test_skip_invalid_lists_rows(tmp_path):
    rows = GOOD_ROWS + [BAD_CASES["missing folder"][0], BAD_CASES["unknown emotion"][0]]
    make_tree(tmp_path, rows=rows)
    ds = Casme2Dataset().load(tmp_path, LoadOptions(task="megc3", skip_invalid=True))
    assert len(ds.samples) == 4
    assert len(ds.skipped) == 2
    assert "row 7" in ds.skipped[0] and "EP99_01" in ds.skipped[0]
    assert "row 8" in ds.skipped[1] and "joy" in ds.skipped[1]


def test_header_variants_and_title_rows(tmp_path):
    path = tmp_path / "CASME2-coding-x.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["CASME II coding"])
        w.writerow([])
        w.writerow(["subject", "Filename", "Onset Frame", "Apex_Frame", "offsetframe", "Estimated Emotion "])
        w.writerow(["1", "EP01", "1", "2", "3", "happiness"])
    (rec,) = read_coding_table(path)
    assert rec["_row"] == 4 and rec["onset"] == "1" and rec["emotion"] == "happiness"


def test_megc2019_exclusions(tmp_path):
    names = [("sub04", "EP12_01f"), ("sub05", "EP09_05f"), ("sub24", "EP02_07"), ("sub05", "EP12_03f")]
    rows = [[s[3:], c, 1, 2, 3, "9", "disgust"] for s, c in names]
    make_tree(tmp_path, rows=rows, frames={n: range(1, 4) for n in names})
    megc3 = Casme2Dataset().load(tmp_path, LoadOptions(task="megc3"))
    assert [(s.subject, s.clip) for s in megc3.samples] == [("sub05", "EP12_03f")]
    sde5 = Casme2Dataset().load(tmp_path, LoadOptions(task="sde5"))
    assert len(sde5.samples) == 4
    excluded = next(s for s in sde5.samples if s.clip == "EP12_01f")
    assert excluded.labels == {"sde5": 2}
    # the synthetic corpus reads with the same code but has no official exclusions
    syn = load_casme2_tree(tmp_path, LoadOptions(task="megc3"), dataset_name="synthetic")
    assert len(syn.samples) == 4 and syn.samples[0].dataset == "synthetic"


@pytest.mark.skipif(not (SHARED / "data/annotations/casme2_5class_frames.csv").is_file(),
                    reason=f"{SHARED}/data/annotations absent (set MER_SHARED)")
def test_real_annotations_give_megc2019_counts(tmp_path):
    """The real subjects, clip names and frame numbers: 145 = 88/32/25 from 24 subjects."""
    words = {1: "happiness", 2: "surprise", 3: "disgust", 4: "repression", 5: "others"}
    rows = []
    with open(SHARED / "data/annotations/casme2_5class_frames.csv", newline="") as f:
        table = [r for r in csv.reader(f) if r]
    for sub, clip, on, ap, off, cls in table:
        on, ap, off = int(on), int(ap), int(off)
        write_frames(tmp_path / "CASME2_RAW_selected" / sub / clip, sorted({on, (on + ap) // 2, ap, off}))
        rows.append([sub[3:], clip, on, ap, off, "", words[int(cls)]])
    write_sheet(tmp_path / "CASME2-coding-20190701.xlsx", rows)
    sparse = {"sparse_frames": True}  # onset, apex, offset and one frame between
    ds = Casme2Dataset().load(tmp_path, LoadOptions(task="megc3", extra=sparse))
    assert len(ds.samples) == 145
    assert Counter(s.label("megc3") for s in ds.samples) == {0: 88, 1: 32, 2: 25}
    assert len(ds.subjects) == 24
    assert "casme2/sub10" not in ds.subjects and "casme2/sub18" not in ds.subjects
    by_key = {(s.subject, s.clip): s for s in ds.samples}
    for sub, clip, on, ap, off, _ in table:
        s = by_key.get((sub, clip))
        if s is not None:
            assert (s.frame_numbers[s.onset], s.frame_numbers[s.apex], s.frame_numbers[s.offset]) == \
                (int(on), int(ap), int(off))
    sde5 = Casme2Dataset().load(tmp_path, LoadOptions(task="sde5", extra=sparse))
    assert Counter(s.label("sde5") for s in sde5.samples) == {0: 32, 1: 25, 2: 64, 3: 27, 4: 99}


def test_a_frame_missing_from_the_middle_of_a_clip_is_an_error(tmp_path):
    make_tree(tmp_path)
    (tmp_path / "CASME2_RAW_selected" / "sub01" / "EP02_01f" / "img12.jpg").unlink()  # between onset 9 and offset 14
    with pytest.raises(DatasetError, match=r"CASME2-coding-20190701.xlsx row 2 \(1/EP02_01f\): .*EP02_01f misses "
                                           r"frame\(s\) img12 \(img8..img15, 7 files\); -D sparse_frames=true"):
        Casme2Dataset().load(tmp_path, LoadOptions(task="sde5"))
    skipped = Casme2Dataset().load(tmp_path, LoadOptions(task="sde5", skip_invalid=True))
    assert len(skipped.samples) == 4 and "misses frame(s) img12" in skipped.skipped[0]
    sparse = Casme2Dataset().load(tmp_path, LoadOptions(task="sde5", extra={"sparse_frames": True}))
    assert len(sparse.samples) == 5
