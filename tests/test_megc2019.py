"""MEGC2019 composite from a synthetic tree with the real subjects/clips/frames: equals the official GT."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mercore.data.dataset import DatasetError, LoadOptions
from mercore.testing.layouts import read_table, write_megc2019
from mercore.data.megc2019 import Megc2019Dataset
from mercore.shared import shared_dir

ANN = shared_dir() / "data" / "annotations"
GT = ANN / "megc2019_combined_3class_gt.csv"
pytestmark = pytest.mark.skipif(not GT.is_file(), reason=f"{GT} absent (set MER_SHARED)")


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_megc2019(tmp_path_factory.mktemp("megc"), ANN, frames_per_clip=3)


SPARSE = {"sparse_frames": True}  # the tree holds 3 frames of each CASME II clip


def test_composite_equals_official_gt(tree: Path) -> None:
    ds = Megc2019Dataset().load(tree, LoadOptions(extra=SPARSE))
    assert len(ds.samples) == 442 and len(ds.subjects) == 68 and ds.skipped == []
    assert Counter(s.label("megc3") for s in ds.samples) == Counter({0: 250, 1: 109, 2: 83})
    per = {c: (sum(s.dataset == c for s in ds.samples), len({s.group for s in ds.samples if s.dataset == c}))
           for c in ("smic", "casme2", "samm")}
    assert per == {"smic": (164, 16), "casme2": (145, 24), "samm": (133, 28)}
    gt = {(d, f"{int(s):03d}" if d == "samm" else s, c, int(label)) for d, s, c, label in read_table(GT)}
    assert {(s.dataset, s.subject, s.clip, s.label("megc3")) for s in ds.samples} == gt
    assert "casme2/sub01" in ds.subjects and "smic/s01" in ds.subjects and "samm/006" in ds.subjects


def test_gt_option(tree: Path, tmp_path: Path) -> None:
    assert len(Megc2019Dataset().load(tree, LoadOptions(extra={"gt": str(GT), **SPARSE})).samples) == 442
    small = tmp_path / "gt.csv"
    small.write_text("dataset,subject,clip,label\ncasme2,sub01,EP02_01f,1\n\nsamm,6,006_1_2,0\n")
    assert [s.key for s in Megc2019Dataset().load(tree, LoadOptions(extra={"gt": str(small), **SPARSE})).samples] == \
        ["casme2/sub01/EP02_01f", "samm/006/006_1_2"]
    small.write_text("casme2,sub01,EP02_01f,2\n")
    with pytest.raises(DatasetError, match=r"gt.csv row 1: casme2/sub01/EP02_01f has label 1 here, 2"):
        Megc2019Dataset().load(tree, LoadOptions(extra={"gt": str(small), **SPARSE}))
    with pytest.raises(DatasetError, match="no smic folder"):
        Megc2019Dataset().load(tree / "CASME2", LoadOptions())
