"""Built-in feature extractors through the FeatureStore: shapes, caching, errors, release files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mercore.data.frames import write_image
from mercore.features.extractors import BUILTIN_EXTRACTORS
from mercore.features.flow import compute_flow
from mercore.features.store import FeatureError, FeatureStore
from mercore.sample import Sample
from mercore.shared import shared_dir

SIZE = 32
SHARED = shared_dir()
RELEASE = SHARED / "data" / "megc2019-flow-smic"


def texture_rgb(n: int, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    x, y = x - dx, y - dy
    channels = []
    for _ in range(3):
        img = np.full((n, n), 0.5)
        for _ in range(4):
            theta, lam, phase = rng.uniform(0, np.pi), rng.uniform(8, 14), rng.uniform(0, 2 * np.pi)
            img += 0.08 * np.sin(2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / lam + phase)
        channels.append(img)
    return np.stack(channels, axis=-1).astype(np.float32)


def make_clip(root: Path, name: str = "c1", n_frames: int = 4, shift: float = 1.0, suffix: str = ".png",
              onset: int = 0, apex: int = 2) -> Sample:
    frames = []
    for i in range(n_frames):
        t = min(i, apex) / apex if apex > 0 else 0.0
        path = root / name / f"img{i:03d}{suffix}"
        write_image(path, texture_rgb(SIZE, dx=shift * t, dy=-0.5 * shift * t))
        frames.append(path)
    return Sample(dataset="synthetic", subject="s1", clip=name, frames=tuple(frames), onset=onset, apex=apex,
                  offset=n_frames - 1, labels={"t": 0})


@pytest.fixture()
def store(tmp_path: Path) -> FeatureStore:
    return FeatureStore({e.name: e for e in BUILTIN_EXTRACTORS}, tmp_path / "cache")


@pytest.fixture()
def clip(tmp_path: Path) -> Sample:
    return make_clip(tmp_path / "clips")


S = dict(size=SIZE)
CASES = [
    ("onset_frame", S, (3, SIZE, SIZE)),
    ("onset_frame", dict(S, gray=True), (1, SIZE, SIZE)),
    ("apex_frame", S, (3, SIZE, SIZE)),
    ("optical_flow", S, (2, SIZE, SIZE)),
    ("optical_flow", dict(S, backend="dis", magnification=1.0), (2, SIZE, SIZE)),
    ("optical_strain", dict(S, backend="farneback"), (1, SIZE, SIZE)),
    ("flow_uvs", S, (3, SIZE, SIZE)),
    ("flow_uvs", dict(S, normalize="minmax"), (3, SIZE, SIZE)),
    ("frame_diff", S, (3, SIZE, SIZE)),
    ("frame_diff", dict(S, gray=True, magnification=2.0), (1, SIZE, SIZE)),
    ("magnified_apex", S, (3, SIZE, SIZE)),
    ("interpolated_sequence", dict(S, length=4), (4, 3, SIZE, SIZE)),
    ("sequence_flow", dict(S, length=3, backend="dis"), (2, 2, SIZE, SIZE)),
    ("sequence_diff", dict(S, length=5, magnification=1.0), (3, 4, SIZE, SIZE)),
]


@pytest.mark.parametrize("name,params,shape", CASES)
def test_extractor_shapes(store: FeatureStore, clip: Sample, name: str, params: dict, shape: tuple) -> None:
    out = store.get(name, clip, **params)
    assert out.shape == shape
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))


def test_builtin_names_unique_and_all_covered() -> None:
    names = [e.name for e in BUILTIN_EXTRACTORS]
    assert len(names) == len(set(names))
    covered = {c[0] for c in CASES} | {"release_flow", "release_apex"}
    assert set(names) == covered


def test_values(store: FeatureStore, clip: Sample) -> None:
    onset = store.get("onset_frame", clip, size=SIZE)
    apex = store.get("apex_frame", clip, size=SIZE)
    assert 0 <= onset.min() and onset.max() <= 1
    np.testing.assert_allclose(store.get("frame_diff", clip, size=SIZE), np.abs(apex - onset), atol=1e-6)
    flow = store.get("optical_flow", clip, size=SIZE)
    c = slice(8, -8)
    assert np.median(flow[0, c, c]) == pytest.approx(1.0, abs=0.2)  # dx = 1 at the apex
    assert np.median(flow[1, c, c]) == pytest.approx(-0.5, abs=0.2)
    uvs = store.get("flow_uvs", clip, size=SIZE)
    np.testing.assert_array_equal(uvs[:2], flow)
    np.testing.assert_array_equal(uvs[2:], store.get("optical_strain", clip, size=SIZE))
    mm = store.get("flow_uvs", clip, size=SIZE, normalize="minmax")
    assert mm.min() == 0 and mm.max() == 1
    # magnification: honest flow to the magnified apex is ~ (1 + phi) times the plain flow
    flow2 = store.get("optical_flow", clip, size=SIZE, magnification=1.0)
    assert np.median(flow2[0, c, c]) == pytest.approx(2.0, abs=0.3)
    np.testing.assert_array_equal(store.get("magnified_apex", clip, size=SIZE, magnification=0), apex)
    # sequence: endpoints are onset and apex, diffs sum to apex - onset
    seq = store.get("interpolated_sequence", clip, size=SIZE, length=5)
    np.testing.assert_array_equal(seq[0], onset)
    np.testing.assert_array_equal(seq[-1], apex)
    diff = store.get("sequence_diff", clip, size=SIZE, length=5)
    np.testing.assert_allclose(diff.sum(axis=1), apex - onset, atol=1e-5)
    np.testing.assert_array_equal(store.get("sequence_diff", clip, size=SIZE, length=5, absolute=True), np.abs(diff))
    sflow = store.get("sequence_flow", clip, size=SIZE, length=5)
    assert np.median(sflow[0, :, c, c]) == pytest.approx(0.25, abs=0.1)


def test_cache_hits_and_param_changes(store: FeatureStore, clip: Sample) -> None:
    store.get("optical_strain", clip, size=SIZE)
    assert (store.cache.hits, store.cache.misses) == (0, 2)  # strain + the flow it reuses
    store.get("optical_strain", clip, size=SIZE)
    assert (store.cache.hits, store.cache.misses) == (1, 2)
    store.get("optical_flow", clip, size=SIZE)  # computed once, reused
    assert (store.cache.hits, store.cache.misses) == (2, 2)
    # defaults filled in and types normalised: same cache entry
    store.get("optical_flow", clip, size=float(SIZE), backend="tvl1", magnification=0)
    assert (store.cache.hits, store.cache.misses) == (3, 2)
    store.get("optical_flow", clip, size=SIZE, backend="dis")  # a changed param recomputes
    assert store.cache.misses == 3
    # a fresh store on the same folder reads from disk
    other = FeatureStore(store.extractors, store.cache_dir)
    other.get("optical_strain", clip, size=SIZE)
    assert (other.cache.hits, other.cache.misses) == (1, 0)


def test_param_errors(store: FeatureStore, clip: Sample) -> None:
    """A bad or unknown parameter is a FeatureError naming the extractor and the parameter."""
    with pytest.raises(FeatureError, match="'optical_flow' rejected.*align"):
        store.get("optical_flow", clip, size=SIZE, align="bogus")
    with pytest.raises(FeatureError, match="tvl1"):
        store.get("optical_flow", clip, size=SIZE, backend="horn")
    with pytest.raises(FeatureError, match="'flow_uvs' rejected.*minmax"):
        store.get("flow_uvs", clip, size=SIZE, normalize="zscore")
    with pytest.raises(FeatureError, match="magnification"):
        store.get("magnified_apex", clip, size=SIZE, magnification=-1)
    with pytest.raises(FeatureError, match="length"):
        store.get("sequence_flow", clip, size=SIZE, length=1)
    with pytest.raises(FeatureError, match="'onset_frame' rejected.*sise"):
        store.get("onset_frame", clip, sise=SIZE)


def test_unknown_onset_or_apex(store: FeatureStore, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clips", name="noapex")
    bad = Sample(dataset="synthetic", subject="s1", clip="noapex", frames=clip.frames, onset=0, apex=-1)
    with pytest.raises(FeatureError, match="synthetic/s1/noapex.*apex"):
        store.get("apex_frame", bad, size=SIZE)
    out = Sample(dataset="synthetic", subject="s1", clip="noapex", frames=clip.frames, onset=9, apex=2)
    with pytest.raises(FeatureError, match="synthetic/s1/noapex.*onset.*outside"):
        store.get("optical_flow", out, size=SIZE)


def test_corrupt_frame_names_the_file(store: FeatureStore, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clips", name="corrupt", suffix=".jpg")
    clip.frames[clip.apex].write_bytes(b"\xff\xd8garbage, not a jpeg")
    with pytest.raises(FeatureError, match=r"img002\.jpg"):
        store.get("optical_flow", clip, size=SIZE)


def test_release_extras_missing(store: FeatureStore, clip: Sample, tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match="flow_image"):
        store.get("release_flow", clip)
    gone = Sample(dataset="smic", subject="s01", clip="x", extras={"apex_image": tmp_path / "nope.jpg"})
    with pytest.raises(FeatureError, match="nope.jpg"):
        store.get("release_apex", gone)


@pytest.mark.skipif(not (RELEASE / "u_v_os").is_dir(), reason="shared SMIC flow release not present")
def test_release_flow_and_apex_real_file(store: FeatureStore) -> None:
    flow_png = RELEASE / "u_v_os" / "s01_s01_ne_01.png"
    apex_jpg = RELEASE / "apex" / "s01_s01_ne_01.jpg"
    sample = Sample(dataset="smic", subject="s01", clip="s01_ne_01",
                    extras={"flow_image": flow_png, "apex_image": apex_jpg})
    uvs = store.get("release_flow", sample)
    assert uvs.shape == (3, 28, 28) and uvs.dtype == np.float32
    assert 0 <= uvs.min() and uvs.max() <= 1
    # channel order u, v, strain: strain is a magnitude (mostly near its minimum), u and v are
    # signed fields whose zero sits mid-range; the strain recomputed from u, v matches channel 2
    assert np.median(uvs[2]) < np.median(uvs[0]) and np.median(uvs[2]) < np.median(uvs[1])
    from mercore.features.flow import optical_strain
    recomputed = optical_strain(uvs[:2])[0]
    assert np.corrcoef(recomputed.ravel(), uvs[2].ravel())[0, 1] > 0.6
    assert store.get("release_flow", sample, size=14).shape == (3, 14, 14)
    apex = store.get("release_apex", sample)
    assert apex.shape == (3, 224, 224)
    assert store.get("release_apex", sample, size=64, gray=True).shape == (1, 64, 64)


def test_compute_flow_used_by_extractor_matches(store: FeatureStore, clip: Sample) -> None:
    onset = store.get("onset_frame", clip, size=SIZE, gray=True)[0]
    apex = store.get("apex_frame", clip, size=SIZE, gray=True)[0]
    np.testing.assert_allclose(store.get("optical_flow", clip, size=SIZE, backend="farneback"),
                               compute_flow(onset, apex, "farneback"), atol=1e-6)


def test_source_size_computes_fine_then_pools(store: FeatureStore, clip: Sample) -> None:
    """Flow computed at a larger size and area-pooled keeps its meaning: vectors in output pixels."""
    import cv2

    small = SIZE // 2
    fine = store.get("optical_flow", clip, size=SIZE)
    pooled = store.get("optical_flow", clip, size=small, source_size=SIZE)
    expected = np.stack([cv2.resize(c, (small, small), interpolation=cv2.INTER_AREA) for c in fine]) * 0.5
    np.testing.assert_allclose(pooled, expected, atol=1e-6)
    assert store.get("flow_uvs", clip, size=small, source_size=SIZE).shape == (3, small, small)
    seq = store.get("sequence_flow", clip, size=small, length=4, source_size=SIZE)
    fine_seq = store.get("sequence_flow", clip, size=SIZE, length=4)
    assert seq.shape == (2, 3, small, small)
    np.testing.assert_allclose(seq.mean(), fine_seq.mean() * 0.5, atol=1e-4)
    # source_size equal to size is the plain extractor (same cache entry)
    assert store.get("optical_flow", clip, size=SIZE, source_size=SIZE) is not None


def test_flow_uvs_can_pool_the_three_maps_as_the_releases_were_made(store: FeatureStore, clip: Sample) -> None:
    """``pool="maps"``: u, v and strain computed at ``source_size`` and then reduced, not the strain
    of the reduced flow; ``strain`` picks the formula. Defaults stay out of the cache key."""
    import cv2

    small = SIZE // 2
    fine = store.get("flow_uvs", clip, size=SIZE)
    maps = store.get("flow_uvs", clip, size=small, source_size=SIZE, pool="maps")
    expected = np.stack([cv2.resize(c, (small, small), interpolation=cv2.INTER_AREA) for c in fine])
    expected[:2] *= 0.5
    np.testing.assert_allclose(maps, expected, atol=1e-6)
    flow_pooled = store.get("flow_uvs", clip, size=small, source_size=SIZE)
    np.testing.assert_allclose(maps[:2], flow_pooled[:2], atol=1e-6)  # the same u, v; another strain
    assert not np.allclose(maps[2], flow_pooled[2], atol=1e-3)
    dfrnet = store.get("flow_uvs", clip, size=SIZE, strain="dfrnet")
    np.testing.assert_array_equal(dfrnet[:2], fine[:2])
    np.testing.assert_array_equal(dfrnet[2:], store.get("optical_strain", clip, size=SIZE, strain="dfrnet"))
    assert not np.array_equal(dfrnet[2], fine[2])
    plain = store.lookup("flow_uvs")(size=SIZE, source_size=SIZE // 2, pool="flow", strain="tensor").params()
    assert "pool" not in plain and "strain" not in plain
    with pytest.raises(FeatureError, match="'flow_uvs' rejected.*pool"):
        store.get("flow_uvs", clip, size=small, source_size=SIZE, pool="nearest")



def _entry(store: FeatureStore, name: str, sample: Sample, **params) -> Path:
    extractor = store.lookup(name)(**params)
    return store.cache.path(name, store.cache.key(name, extractor.version, extractor.params(), store.fingerprint(sample)))


def test_a_cache_entry_that_does_not_hold_its_key_is_recomputed_with_a_warning(store: FeatureStore, tmp_path: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    a, b = make_clip(tmp_path / "clips", "a", shift=1.0), make_clip(tmp_path / "clips", "b", shift=3.0)
    want = store.get("apex_frame", a, size=SIZE)
    assert not np.array_equal(want, store.get("apex_frame", b, size=SIZE))
    path = _entry(store, "apex_frame", a, size=SIZE)
    with np.load(path) as entry:
        meta = entry["meta"]
    damaged = {
        "another clip's valid entry": (_entry(store, "apex_frame", b, size=SIZE).read_bytes(), "holds another entry's array"),
        "an empty file": (b"", "is damaged or not a cache entry"),
        "an edited array": (None, "holds an array that does not match its record"),
    }
    for what, (content, warning) in damaged.items():
        if content is None:
            np.savez(path, array=want + 1, meta=meta)
        else:
            path.write_bytes(content)
        caplog.clear()
        misses = store.cache.misses
        np.testing.assert_array_equal(store.get("apex_frame", a, size=SIZE), want, err_msg=what)
        assert store.cache.misses == misses + 1, what
        (message,) = [r.getMessage() for r in caplog.records]
        assert message.startswith(f"feature cache file {path} {warning}") and message.endswith("; recomputing it"), what
    hits = store.cache.hits
    store.get("apex_frame", a, size=SIZE)  # the recomputed entry is stored again, and used
    assert store.cache.hits == hits + 1
