"""Precomputed-flow release adapter: the shared SMIC part, and validation of a synthetic release."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mercore.data.dataset import DatasetError, LoadOptions
from mercore.data.flow_release import MegcFlowReleaseDataset
from mercore.testing.layouts import write_flow_release
from mercore.shared import shared_dir

SMIC = shared_dir() / "data" / "megc2019-flow-smic"


@pytest.mark.skipif(not (SMIC / "labels.csv").is_file(), reason=f"{SMIC} absent (set MER_SHARED)")
def test_shared_smic_release() -> None:
    ds = MegcFlowReleaseDataset().load(SMIC, LoadOptions())
    assert len(ds.samples) == 164 and len(ds.subjects) == 16 and ds.skipped == []
    assert Counter(s.label("megc3") for s in ds.samples) == Counter({0: 70, 1: 51, 2: 43})
    s = ds.samples[0]
    assert s.frames == () and s.extras["flow_image"].is_file() and s.extras["apex_image"].is_file()
    assert MegcFlowReleaseDataset.kind == "flow-release"


def test_synthetic_release_and_errors(tmp_path: Path) -> None:
    root = write_flow_release(tmp_path, [("samm", "6", "006_1_2", 0), ("casme2", "sub01", "EP02_01f", 1)])
    ds = MegcFlowReleaseDataset().load(root, LoadOptions())
    assert [s.key for s in ds.samples] == ["casme2/sub01/EP02_01f", "samm/006/006_1_2"]
    assert ds.samples[1].extras["flow_image"].name == "6_006_1_2.png"
    with open(root / "labels.csv", "a") as f:
        f.write("smic,s01,s01_ne_01,5\n")
    with pytest.raises(DatasetError, match=r"labels.csv row 4: label '5'"):
        MegcFlowReleaseDataset().load(root, LoadOptions())
    ds = MegcFlowReleaseDataset().load(root, LoadOptions(skip_invalid=True))
    assert len(ds.samples) == 2 and "row 4" in ds.skipped[0]
    (root / "u_v_os" / "6_006_1_2.png").unlink()
    with pytest.raises(DatasetError, match=r"row 2: flow_image file .* not found"):
        MegcFlowReleaseDataset().load(root, LoadOptions())


@pytest.mark.parametrize("what, folder, name, image, found", [
    ("flow_image", "u_v_os", "6_006_1_2.png", np.zeros((40, 64, 3), np.uint8), "40x64 with 3 channel"),
    ("flow_image", "u_v_os", "6_006_1_2.png", np.zeros((28, 28), np.uint8), "28x28 with 1 channel"),
    ("apex_image", "apex", "6_006_1_2.jpg", np.zeros((224, 224), np.uint8), "224x224 with 1 channel"),
    ("flow_image", "u_v_os", "6_006_1_2.png", None, "cannot be decoded"),
])
def test_a_release_file_of_another_shape_is_refused_naming_it_or_skipped(tmp_path: Path, what: str, folder: str,
                                                                         name: str, image, found: str) -> None:
    import cv2

    root = write_flow_release(tmp_path, [("samm", "6", "006_1_2", 0), ("casme2", "sub01", "EP02_01f", 1)])
    path = root / folder / name
    if image is None:
        path.write_bytes(b"\x89PNG truncated")
    else:
        cv2.imwrite(str(path), image)
    with pytest.raises(DatasetError, match=rf"row 2: {what} {re.escape(str(path))} .*{found}.*"
                                           rf"a flow release holds \d+x\d+ 8-bit RGB images there"):
        MegcFlowReleaseDataset().load(root, LoadOptions())
    ds = MegcFlowReleaseDataset().load(root, LoadOptions(skip_invalid=True))
    assert [s.key for s in ds.samples] == ["casme2/sub01/EP02_01f"]
    assert len(ds.skipped) == 1 and str(path) in ds.skipped[0]


def test_the_release_extractors_refuse_a_map_of_another_shape(tmp_path: Path) -> None:
    import cv2

    from mercore.features.extractors import BUILTIN_EXTRACTORS
    from mercore.features.store import FeatureError, FeatureStore

    root = write_flow_release(tmp_path, [("casme2", "sub01", "EP02_01f", 1)])
    sample = MegcFlowReleaseDataset().load(root, LoadOptions()).samples[0]
    store = FeatureStore({e.name: e for e in BUILTIN_EXTRACTORS}, None)
    assert store.get("release_flow", sample).shape == (3, 28, 28)
    cv2.imwrite(str(sample.extras["flow_image"]), np.zeros((28, 28), np.uint8))
    with pytest.raises(FeatureError, match=r"flow_image .*EP02_01f.png is 28x28 with 1 channel"):
        store.get("release_flow", sample)
