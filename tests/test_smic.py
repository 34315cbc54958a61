"""SMIC-HS adapter: class from the folder, s1 -> s01, first/last frames, middle or spotted apex."""
from __future__ import annotations

from pathlib import Path

import pytest

from mercore.data.dataset import DatasetError, LoadOptions
from mercore.testing.layouts import FrameWriter, write_smic
from mercore.data.smic import SmicDataset


def tiny_annotations(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "smic_3class_frames.csv").write_text(
        "s01,s01_ne_01,100,110,130,2\ns01,s01_po_02,200,205,215,1\ns12,s12_sur_01,50,60,69,3\n")
    return folder


def test_layout_labels_and_ids(tmp_path: Path) -> None:
    root = write_smic(tmp_path / "SMIC", tiny_annotations(tmp_path / "ann"), frames_per_clip=5)
    assert (root / "HS" / "s1" / "micro" / "negative" / "s1_ne_01" / "image100.bmp").is_file()
    ds = SmicDataset().load(root, LoadOptions())
    assert [s.key for s in ds.samples] == ["smic/s01/s01_ne_01", "smic/s01/s01_po_02", "smic/s12/s12_sur_01"]
    s = ds.samples[0]
    assert (s.frame_numbers[s.onset], s.frame_numbers[s.offset]) == (100, 130)
    assert s.apex == (len(s.frames) - 1) // 2 and s.fps == 100
    assert [x.labels for x in ds.samples] == [{"megc3": 0, "sde3": 0}, {"megc3": 1, "sde3": 1},
                                              {"megc3": 2, "sde3": 2}]
    assert SmicDataset().load(root / "HS", LoadOptions(task="sde3")).task == "sde3"


def test_errors(tmp_path: Path) -> None:
    root = write_smic(tmp_path / "SMIC", tiny_annotations(tmp_path / "ann"), frames_per_clip=3)
    (root / "HS" / "s1" / "micro" / "anger" / "s1_an_01").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"s1_an_01: unknown emotion folder 'anger'"):
        SmicDataset().load(root, LoadOptions())
    ds = SmicDataset().load(root, LoadOptions(skip_invalid=True))
    assert len(ds.samples) == 3 and len(ds.skipped) == 1
    with pytest.raises(DatasetError, match="apex="):
        SmicDataset().load(root, LoadOptions(extra={"apex": "peak"}))


def test_spotting_option(tmp_path: Path) -> None:
    ann = tiny_annotations(tmp_path / "ann")
    root = write_smic(tmp_path / "SMIC", ann, frames_per_clip=None, writer=FrameWriter("face", size=64))
    opts = LoadOptions(cache_dir=tmp_path / "cache", extra={"apex": "spotting", "landmarks": "canonical"})
    ds = SmicDataset().load(root, opts)
    assert all(0 <= s.apex < len(s.frames) for s in ds.samples)
    assert len(list((tmp_path / "cache" / "spotting").glob("*.json"))) == 3
    again = SmicDataset().load(root, opts)  # from the cache
    assert [s.apex for s in again.samples] == [s.apex for s in ds.samples]
