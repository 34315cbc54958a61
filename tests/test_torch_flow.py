"""``tvl1-torch`` reproduces scikit-image's TV-L1 (tolerance of docs/torch-flow.md) on tiny pairs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from skimage.registration import optical_flow_tvl1
from skimage.registration._optical_flow_utils import _get_pyramid
from skimage.registration._optical_flow_utils import _resize_flow as sk_resize_flow

from mercore.data import synthetic
from mercore.data.frames import read_image, resize, to_gray
from mercore.features.flow import compute_flow, compute_flow_batch
from mercore.features.torch_flow import _pyramid, _resize_flow, tvl1_torch
from mercore.shared import shared_dir

SMIC_APEX = shared_dir() / "data" / "megc2019-flow-smic" / "apex"
# Agreement with scikit-image (docs/torch-flow.md): endpoint error over all pixels of a pair.
MEAN_TOL, P99_TOL, MAX_TOL = 1e-3, 1e-2, 0.1


def texture(n: int, seed: int) -> np.ndarray:
    """Smooth random texture in [0.1, 0.9]."""
    img = ndi.gaussian_filter(np.random.default_rng(seed).random((n, n)), 1.5)
    return (0.1 + 0.8 * (img - img.min()) / (img.max() - img.min())).astype(np.float32)


def smooth_field(n: int, seed: int) -> np.ndarray:
    """(2, n, n) (u, v): a Gaussian bump of up to 1 px plus a sub-pixel translation."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float64)
    x0, y0 = rng.uniform(0.3, 0.7, 2) * n
    bump = np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * (0.2 * n) ** 2))
    direction = rng.normal(size=2)
    field = bump[None] * (direction / np.linalg.norm(direction))[:, None, None]
    return (field + rng.uniform(-0.6, 0.6, 2)[:, None, None]).astype(np.float32)


def warped_pair(nxt: np.ndarray, field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prev, nxt) with prev(x) = nxt(x + field(x)), so the true flow prev -> nxt is ``field``."""
    ys, xs = np.mgrid[0:nxt.shape[0], 0:nxt.shape[1]].astype(np.float64)
    prev = ndi.map_coordinates(nxt.astype(np.float64), [ys + field[1], xs + field[0]], order=3, mode="nearest")
    return prev.astype(np.float32), nxt


def skimage_flow(prev: np.ndarray, nxt: np.ndarray, **kw) -> np.ndarray:
    v, u = optical_flow_tvl1(prev, nxt, **kw)
    return np.stack([u, v])


def assert_agrees(ours: np.ndarray, ref: np.ndarray) -> None:
    epe = np.sqrt(((ours - ref) ** 2).sum(-3))
    assert epe.mean() < MEAN_TOL and np.percentile(epe, 99) < P99_TOL and epe.max() < MAX_TOL, \
        (epe.mean(), np.percentile(epe, 99), epe.max())


def test_pyramid_and_flow_resize_match_skimage() -> None:
    img = texture(70, 0)[:, :45].copy()  # odd, non-square: 70x45 -> 35x23
    ours = _pyramid(torch.from_numpy(img)[None], 2.0, 10, 16)
    ref = _get_pyramid(img, 2.0, 10, 16)
    assert [tuple(level.shape[1:]) for level in ours] == [level.shape for level in ref] == [(35, 23), (70, 45)]
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a[0].numpy(), b, atol=1e-6)
    flow = np.random.default_rng(1).normal(size=(2, 17, 23)).astype(np.float32)
    np.testing.assert_allclose(_resize_flow(torch.from_numpy(flow)[None], (33, 45))[0].numpy(),
                               sk_resize_flow(flow, (33, 45)), rtol=1e-6)


@pytest.mark.parametrize("prefilter", [False, True])
def test_batch_agrees_with_skimage_and_truth(prefilter: bool) -> None:
    pairs = [warped_pair(texture(48, s), smooth_field(48, s)) for s in range(3)]
    truth = np.stack([smooth_field(48, s) for s in range(3)])
    prevs = torch.from_numpy(np.stack([p for p, _ in pairs]))
    nxts = torch.from_numpy(np.stack([n for _, n in pairs]))
    ours = tvl1_torch(prevs, nxts, prefilter=prefilter).numpy()
    assert ours.shape == (3, 2, 48, 48) and ours.dtype == np.float32
    ref = np.stack([skimage_flow(p, n, prefilter=prefilter) for p, n in pairs])
    assert_agrees(ours, ref)
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    err = np.sqrt(((ours - truth)[inner] ** 2).sum(1))
    assert np.median(err) < 0.1  # the motion itself (up to ~1.5 px) is recovered, sign and order (u, v)


def test_pairs_of_a_batch_are_solved_independently() -> None:
    """Each pair stops at its own warp (identical images at once); batching changes nothing else."""
    prev, nxt = warped_pair(texture(40, 3), smooth_field(40, 3))
    still = texture(40, 4)
    batch = tvl1_torch(torch.from_numpy(np.stack([still, prev])), torch.from_numpy(np.stack([still, nxt])))
    assert batch[0].abs().max() < 1e-5
    alone = tvl1_torch(torch.from_numpy(prev)[None], torch.from_numpy(nxt)[None])
    assert_agrees(batch[1].numpy(), alone[0].numpy())
    assert_agrees(batch[1].numpy(), skimage_flow(prev, nxt))


@pytest.mark.skipif(not SMIC_APEX.is_dir(), reason="SMIC apex crops not available")
def test_real_apex_crop_warped_by_known_field() -> None:
    files = sorted(SMIC_APEX.glob("*.jpg"))[:2]
    pairs = [warped_pair(to_gray(resize(read_image(f), 64)), smooth_field(64, i)) for i, f in enumerate(files)]
    ours = compute_flow_batch(np.stack([p for p, _ in pairs]), np.stack([n for _, n in pairs]), "tvl1-torch")
    ref = np.stack([compute_flow(p, n, "tvl1") for p, n in pairs])
    assert_agrees(ours, ref)


def test_consecutive_synthetic_frames(tmp_path: Path) -> None:
    root = synthetic.generate(tmp_path / "corpus", subjects=1, clips_per_subject=2, size=64, seed=0)
    prevs, nxts = [], []
    for folder in sorted((root / synthetic.FRAMES_FOLDER / "sub01").iterdir()):
        frames = sorted(folder.glob("img*.jpg"), key=lambda p: int(p.stem[3:]))
        mid = len(frames) // 3
        prevs.append(to_gray(read_image(frames[mid])))
        nxts.append(to_gray(read_image(frames[mid + 1])))
    ours = compute_flow_batch(np.stack(prevs), np.stack(nxts), "tvl1-torch", batch_size=1)
    single = compute_flow(prevs[0], nxts[0], "tvl1-torch")
    np.testing.assert_array_equal(ours[0], single)
    assert_agrees(ours, np.stack([compute_flow(p, n, "tvl1") for p, n in zip(prevs, nxts)]))


def test_float64_input_keeps_dtype() -> None:
    prev, nxt = warped_pair(texture(32, 5), smooth_field(32, 5))
    out = tvl1_torch(torch.from_numpy(prev).double()[None], torch.from_numpy(nxt).double()[None])
    assert out.dtype == torch.float64
    assert_agrees(out[0].numpy(), skimage_flow(prev.astype(np.float64), nxt.astype(np.float64), dtype=np.float64))


def test_compute_flow_batch_other_backends_and_errors() -> None:
    prev, nxt = warped_pair(texture(32, 6), smooth_field(32, 6))
    out = compute_flow_batch(np.stack([prev, nxt]), np.stack([nxt, prev]), "farneback")
    assert out.shape == (2, 2, 32, 32) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], compute_flow(nxt, prev, "farneback"))
    assert compute_flow_batch(np.zeros((0, 8, 8)), np.zeros((0, 8, 8)), "tvl1-torch").shape == (0, 2, 8, 8)
    with pytest.raises(ValueError, match="tvl1-torch"):
        compute_flow_batch(prev[None], nxt[None], "nope")
    with pytest.raises(ValueError, match="one shape"):
        compute_flow_batch(prev[None], nxt[None, :16])
    with pytest.raises(ValueError, match="batch_size"):
        compute_flow_batch(prev[None], nxt[None], "tvl1-torch", batch_size=0)
    with pytest.raises(ValueError, match="one shape"):
        tvl1_torch(torch.zeros(8, 8), torch.zeros(8, 8))
    with pytest.raises(ValueError, match="too small"):
        tvl1_torch(torch.zeros(1, 1, 8), torch.zeros(1, 1, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    prev, nxt = warped_pair(texture(64, 7), smooth_field(64, 7))
    p, n = torch.from_numpy(prev)[None], torch.from_numpy(nxt)[None]
    assert_agrees(tvl1_torch(p.cuda(), n.cuda()).cpu().numpy(), tvl1_torch(p, n).numpy())
