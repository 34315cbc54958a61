"""roi_flow: landmark-centred blocks land where HTNet / AHMSA-Net expect them; clamping at borders."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mercore.data.synthetic import make_face
from mercore.features.regions import (CANONICAL_FIVE_POINTS, REGION_EXTRACTORS, RoiFlow, ahmsa5,
                                      canonical_five_points, crop_block, htnet4, recombine)

ORDER = ("left_eye", "right_eye", "left_mouth", "right_mouth")  # htnet4: TL, TR, BL, BR


def face_points(size: int = 128) -> dict[str, tuple[float, float]]:
    """The five points of synthetic subject 0, from the generator's own landmarks."""
    lm = make_face(0, size).landmarks
    nose = tuple((np.array(lm["nose_l"]) + np.array(lm["nose_r"])) / 2)
    return {"left_eye": lm["eye_l"], "right_eye": lm["eye_r"], "nose": nose,  # type: ignore[dict-item]
            "left_mouth": lm["corner_l"], "right_mouth": lm["corner_r"]}


def voronoi_map(points: dict[str, tuple[float, float]], size: int, names=ORDER) -> np.ndarray:
    """(3, size, size): every pixel holds 1 + the index of its nearest landmark among ``names``
    (channel c adds 10 c, so channels stay distinguishable)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    d = np.stack([(xx - points[n][0]) ** 2 + (yy - points[n][1]) ** 2 for n in names])
    region = d.argmin(0) + 1.0
    return np.stack([region + 10 * c for c in range(3)]).astype(np.float32)


def majority(block: np.ndarray) -> float:
    values, counts = np.unique(block, return_counts=True)
    return float(values[counts.argmax()])


def test_htnet4_puts_each_region_in_its_quadrant_on_a_synthetic_face():
    points = face_points(128)
    uvs = voronoi_map(points, 128)
    out = htnet4(uvs, points)
    assert out.shape == (3, 128, 128)
    for i, (r, c) in enumerate([(0, 0), (0, 64), (64, 0), (64, 64)]):
        quadrant = out[0, r:r + 64, c:c + 64]
        assert quadrant[32, 32] == i + 1  # no landmark of this face needs clamping at 128: centre = landmark
        assert majority(quadrant) == i + 1
        x, y = points[ORDER[i]]  # the quadrant is exactly the 64x64 crop around the landmark
        np.testing.assert_array_equal(out[:, r:r + 64, c:c + 64], uvs[:, int(y) - 32:int(y) + 32, int(x) - 32:int(x) + 32])
    np.testing.assert_array_equal(out[2], out[0] + 20)  # channels move together


def test_htnet4_at_28_with_htnets_points():
    points = canonical_five_points(28)
    uvs = voronoi_map(points, 28)
    out = recombine(uvs, points, "htnet4")
    assert out.shape == (3, 28, 28) and out.dtype == np.float32
    for i, (r, c) in enumerate([(0, 0), (0, 14), (14, 0), (14, 14)]):
        assert majority(out[0, r:r + 14, c:c + 14]) == i + 1
    # HTNet's clamp to [7, 21] then truncation: right eye x 21.4 -> 21, mouth y 22.1 / 22.3 -> 21
    np.testing.assert_array_equal(out[:, :14, 14:], uvs[:, 3:17, 14:28])  # right eye (21.4, 10.9) -> (21, 10)
    np.testing.assert_array_equal(out[:, 14:, :14], uvs[:, 14:28, 3:17])  # left mouth (10.3, 22.1) -> (10, 21)


def test_clamping_keeps_blocks_inside():
    uvs = np.arange(3 * 28 * 28, dtype=np.float32).reshape(3, 28, 28)
    np.testing.assert_array_equal(crop_block(uvs, (-5.0, 0.0), 14, 14), uvs[:, :14, :14])
    np.testing.assert_array_equal(crop_block(uvs, (27.9, 40.0), 14, 14), uvs[:, 14:, 14:])
    np.testing.assert_array_equal(crop_block(uvs, (27.9, 3.0), 14, 14), uvs[:, :14, 14:])
    np.testing.assert_array_equal(crop_block(uvs, (12.0, 9.0), 14, 28), uvs[:, 2:16, :])  # band: x pinned to centre
    # landmarks in the four corners: the blocks are the quadrants, so htnet4 gives the map back
    corners = {"left_eye": (0, 0), "right_eye": (28, 0), "nose": (14, 14), "left_mouth": (0, 28), "right_mouth": (28, 28)}
    np.testing.assert_array_equal(htnet4(uvs, corners), uvs)
    with pytest.raises(ValueError):
        crop_block(uvs, (14, 14), 30, 14)


def test_ahmsa5_stacks_eyes_nose_band_and_mouth():
    points = face_points(128)
    names = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
    uvs = voronoi_map(points, 128, names)
    canvas = ahmsa5(uvs, points)
    assert canvas.shape == (3, 192, 128)  # (3B, 2B) with B = 64
    expect = {(0, 0): 1, (0, 64): 2, (128, 0): 4, (128, 64): 5}
    for (r, c), value in expect.items():
        assert canvas[0, r + 32, c + 32] == value
    band = canvas[0, 64:128]
    assert (band[28:36, 60:68] == 3).all()  # the nose at the band's centre
    x, y = points["nose"]
    np.testing.assert_array_equal(canvas[:, 64:128], uvs[:, int(y) - 32:int(y) + 32, :])
    out = recombine(uvs, points, "ahmsa5", 28)
    assert out.shape == (3, 28, 28)
    assert out[0, 3, 3] == pytest.approx(1) and out[0, 24, 24] == pytest.approx(5)


class FakeSource:
    """Records the features asked for and returns a Voronoi map around HTNet's landmarks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get(self, name: str, sample: Any, **params: Any) -> np.ndarray:
        self.calls.append((name, params))
        return voronoi_map(canonical_five_points(params["size"]), params["size"])


def test_extractor_reads_flow_of_clips_or_release():
    assert REGION_EXTRACTORS == (RoiFlow,) and RoiFlow.name == "roi_flow"
    src = FakeSource()
    out = RoiFlow(source_size=56).extract(None, src)  # type: ignore[arg-type]
    assert src.calls == [("flow_uvs", {"size": 56, "backend": "tvl1", "normalize": "minmax", "align": "none"})]
    assert out.shape == (3, 28, 28) and majority(out[0, 14:, 14:]) == 4
    src = FakeSource()
    out = RoiFlow(source="release", layout="ahmsa5").extract(None, src)  # type: ignore[arg-type]
    assert src.calls == [("release_flow", {"size": 28})] and out.shape == (3, 28, 28)
    assert RoiFlow().params() == {"layout": "htnet4", "source": "clips", "source_size": 28, "size": 28,
                                  "landmarks": "canonical", "backend": "tvl1", "align": "none"}
    for bad in (dict(layout="nine"), dict(source="video"), dict(source_size=30), dict(size=2.5), dict(align="mtcnn"),
                dict(source="release", align="dlib")):
        with pytest.raises(ValueError):
            RoiFlow(**bad)


def test_htnet_points_are_htnets_fallback_in_face_order():
    pts = canonical_five_points(28)
    assert pts["left_eye"] == pytest.approx((9.528073, 11.062551))
    assert set(pts) == set(CANONICAL_FIVE_POINTS)
    assert pts["left_eye"][0] < pts["nose"][0] < pts["right_eye"][0]
    assert pts["left_eye"][1] < pts["nose"][1] < pts["left_mouth"][1]



def test_detector_landmarks_come_from_mercore_face_on_the_apex(monkeypatch):
    import mercore.face

    seen = {}

    def fake_five_points(image, backend):
        seen["shape"], seen["backend"] = image.shape, backend
        return {k: (112.0, 56.0) for k in CANONICAL_FIVE_POINTS}

    monkeypatch.setattr(mercore.face, "five_points", fake_five_points)
    src = FakeSource()
    points = RoiFlow(landmarks="dlib", source_size=56)._points(None, src)  # type: ignore[arg-type]
    assert src.calls == [("apex_frame", {"size": 224, "align": "none"})]
    assert seen == {"shape": (224, 224, 3), "backend": "dlib"}
    assert points["nose"] == (28.0, 14.0)  # scaled from the 224 apex to the 56 map
    # auto: detected on the dlib-aligned apex (flow computed on aligned frames too), canonical otherwise
    src, seen = FakeSource(), {}
    RoiFlow(landmarks="auto", align="dlib", source_size=56).extract(None, src)  # type: ignore[arg-type]
    assert src.calls == [("flow_uvs", {"size": 56, "backend": "tvl1", "normalize": "minmax", "align": "dlib"}),
                         ("apex_frame", {"size": 224, "align": "dlib"})] and seen["backend"] == "dlib"
    src, seen = FakeSource(), {}
    assert RoiFlow(landmarks="auto", source_size=56)._points(None, src) == canonical_five_points(56)  # type: ignore[arg-type]
    assert src.calls == [] and seen == {}
