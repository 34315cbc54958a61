"""CAS(ME)^3 part A: the v2 sheet's counts under both 3-class rules, macro pseudo-apex, errors."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from mercore.data.casme3 import Casme3Dataset
from mercore.data.dataset import DatasetError, LoadOptions
from mercore.testing.layouts import _xlsx, write_casme3
from mercore.shared import shared_dir

SHARED = shared_dir()
ANN = SHARED / "data" / "annotations"
HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
needs_shared = pytest.mark.skipif(not (ANN / "casme3_partA_ME_label_JpgIndex_v2.xlsx").is_file(),
                                  reason=f"{ANN} absent (set MER_SHARED)")


@needs_shared
def test_real_sheet_counts(tmp_path: Path) -> None:
    root = write_casme3(tmp_path, ANN, frames_per_clip=3, macro_rows=1)
    counts = {}
    for rule in ("default", "htnet"):
        ds = Casme3Dataset().load(root, LoadOptions(extra={"rule": rule}))
        counts[rule] = (len(ds.samples), len(ds.subjects), Counter(s.label("megc3") for s in ds.samples))
        assert ds.skipped == []
    assert counts["default"] == (699, 88, Counter({0: 457, 1: 55, 2: 187}))
    assert counts["htnet"] == (687, 87, Counter({0: 449, 1: 54, 2: 184}))
    shutil.copy(ANN / "casme3_partA_edited_htnet.csv", root)  # the edit's own file gives the same set
    ds = Casme3Dataset().load(root, LoadOptions(extra={"rule": "htnet"}))
    assert len(ds.samples) == 687
    s = next(x for x in ds.samples if x.key == "casme3/spNO.1/b_166")
    assert s.frame_numbers[s.onset] == 166 and s.frame_numbers[s.apex] == 175 and s.frame_numbers[s.offset] == 179
    macro = Casme3Dataset().load(root, LoadOptions(extra={"kind": "macro"}))
    m = macro.samples[0]
    assert m.frame_numbers[m.apex] == m.frame_numbers[m.onset] + 4  # the 5th frame of the sample


def test_errors(tmp_path: Path) -> None:
    rows = [["spNO.1", "a", "10", "12", "14", "4", "III", "disgust"]]
    for n in (10, 12, 14):
        d = tmp_path / "spNO.1" / "a" / "color"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{n}.jpg").write_bytes(b"x")
    cases = {"is not among the frames": ["spNO.1", "a", "12", "13", "14", "4", "III", "disgust"],
             "unknown emotion": ["spNO.1", "a", "20", "22", "24", "4", "III", "joy"],
             "not found": ["spNO.1", "z", "10", "12", "14", "4", "III", "fear"],
             "not spNO": ["sp1", "a", "10", "12", "14", "4", "III", "fear"]}
    for message, bad in cases.items():
        _xlsx(tmp_path / "casme3_partA_ME_label_JpgIndex_v2.xlsx", HEADER, rows + [bad])
        with pytest.raises(DatasetError, match=rf"JpgIndex_v2.xlsx row 3 .*{message}"):
            Casme3Dataset().load(tmp_path, LoadOptions())
        ds = Casme3Dataset().load(tmp_path, LoadOptions(skip_invalid=True))
        assert [s.clip for s in ds.samples] == ["a_10"] and len(ds.skipped) == 1
    _xlsx(tmp_path / "casme3_partA_ME_label_JpgIndex_v2.xlsx", HEADER,
          rows + [["spNO.1", "a", "12", "12", "14", "4", "III", "others"]])
    assert [s.clip for s in Casme3Dataset().load(tmp_path, LoadOptions()).samples] == ["a_10"]
    every = Casme3Dataset().load(tmp_path, LoadOptions(extra={"all_emotions": True})).samples
    assert [(s.clip, s.labels) for s in every] == [("a_10", {"megc3": 0}), ("a_12", {})]
    with pytest.raises(DatasetError, match="rule="):
        Casme3Dataset().load(tmp_path, LoadOptions(extra={"rule": "mine"}))
