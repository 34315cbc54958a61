"""SAMM adapter: title rows above the header, 6 vs 006, odd frame names, validation errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from mercore.data.dataset import DatasetError, LoadOptions
from mercore.testing.layouts import SAMM_HEADER, _xlsx, write_samm
from mercore.data.samm import SammDataset


def tiny_annotations(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "samm_5class_frames.csv").write_text(
        "006,006_1_2,5562,5588,5632,1\n006,006_1_3,3912,3948,3988,3\n007,007_5_1,10,12,15,5\n"
        "011,011_1_1,100,110,120,4\n")
    (folder / "megc2019_combined_3class_gt.csv").write_text(
        "samm,6,006_1_2,0\nsamm,6,006_1_3,1\nsamm,7,007_9_9,0\nsamm,11,011_1_1,2\n")
    return folder


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_samm(tmp_path / "data", tiny_annotations(tmp_path / "ann"), frames_per_clip=4)


def test_layout_and_labels(tree: Path) -> None:
    ds = SammDataset().load(tree, LoadOptions())
    keys = {s.key: s for s in ds.samples}
    # Other (007_5_1) is not in megc3; 007_9_9 is the placeholder disgust clip
    assert sorted(keys) == ["samm/006/006_1_2", "samm/006/006_1_3", "samm/007/007_9_9", "samm/011/011_1_1"]
    s = keys["samm/006/006_1_3"]  # written with img<N>.jpg names: matched by the trailing number
    assert s.frames[0].name.startswith("img") and s.frame_numbers[s.apex] == 3948
    assert s.labels == {"megc3": 1, "sde5": 2} and s.fps == 200
    assert keys["samm/006/006_1_2"].frames[0].name == "006_05562.jpg"
    assert keys["samm/007/007_9_9"].labels == {"megc3": 0}  # disgust: no SDE5 class
    sde5 = SammDataset().load(tree / "SAMM", LoadOptions(task="sde5"))  # root = the SAMM folder itself
    assert {s.clip: s.label("sde5") for s in sde5.samples} == {"006_1_2": 0, "006_1_3": 2, "007_5_1": 4,
                                                                "011_1_1": 3}


def _sheet(tree: Path, rows) -> None:
    _xlsx(tree / "SAMM_Micro_FACS_Codes_v2.xlsx", SAMM_HEADER, rows, title_rows=12)


def test_errors_name_file_and_row(tree: Path) -> None:
    good = [6, "006_1_3", "", 3912, 3948, 3988, 77, "", "", "", "Happiness"]
    cases = {
        "is not among the frames": [6, "006_1_2", "", 5562, 5599, 5632, 71, "", "", "", "Anger"],
        "unknown emotion": [6, "006_1_2", "", 5562, 5588, 5632, 71, "", "", "", "Joy"],
        "not found": [6, "006_9_9", "", 5562, 5588, 5632, 71, "", "", "", "Anger"],
        "not a frame number": [6, "006_1_2", "", "x", 5588, 5632, 71, "", "", "", "Anger"],
    }
    for message, bad in cases.items():
        _sheet(tree, [good, bad])
        with pytest.raises(DatasetError, match=rf"SAMM_Micro_FACS_Codes_v2.xlsx row 15 .*{message}"):
            SammDataset().load(tree, LoadOptions())
        ds = SammDataset().load(tree, LoadOptions(skip_invalid=True))
        assert len(ds.samples) == 1 and len(ds.skipped) == 1 and "row 15" in ds.skipped[0]


def test_missing_sheet_and_traversal(tmp_path: Path, tree: Path) -> None:
    (tree / "SAMM_Micro_FACS_Codes_v2.xlsx").unlink()
    with pytest.raises(DatasetError, match="no SAMM coding sheet"):
        SammDataset().load(tree, LoadOptions())
    _sheet(tree, [[6, "..", "", 1, 2, 3, 3, "", "", "", "Anger"]])
    with pytest.raises(DatasetError, match="row 14 .*not a clip folder"):
        SammDataset().load(tree, LoadOptions())
