"""A left-right flip of a training input is an input the dataset could contain, for every kind of
flow input: flow in pixels (u -> -u), a release map min-max scaled per channel (u -> 1 - u) and
either of them standardised with a fold's statistics (mirrored about the normalised centre)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mercore.data.frames import read_image
from mercore.evaluation.normalize import Identity, Normalizer, mirror_value
from mercore.features.extractors import FlowUVS, OpticalFlow, ReleaseApex, ReleaseFlow
from mercore.features.flow import minmax_normalise, optical_strain
from mercore.shared import shared_dir
from mercore.training.perturbation import PerturbationTraining

OFF = {op: {"enabled": False} for op in ("color_jitter", "gaussian_noise", "random_mask")}
FLIP = PerturbationTraining.from_config({"enabled": True, "every": 1, **OFF, "hflip": {"enabled": True, "p": 1.0}})


def motion(seed: int, size: int = 16) -> np.ndarray:
    """A smooth, asymmetric flow field (2, size, size) in pixels and its strain: (u, v, strain)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    u = rng.normal() * np.sin(3 * x + rng.normal()) + rng.normal() * y ** 2 + 0.3 * x
    v = rng.normal() * np.cos(2 * y + x) + 0.1 * rng.normal()
    flow = np.stack([u, v]).astype(np.float32)
    return np.concatenate([flow, optical_strain(flow)])


def mirrored_motion(uvs: np.ndarray) -> np.ndarray:
    """The same face filmed in a mirror: every map reversed left-right, motion to the left and
    right swapped (u negated), strain recomputed from the mirrored flow."""
    flow = uvs[:2, :, ::-1].copy()
    flow[0] = -flow[0]
    return np.concatenate([flow, optical_strain(flow)])


def flip_all(x: torch.Tensor, centre: float) -> torch.Tensor:
    return FLIP({"flow": x}, torch.Generator().manual_seed(0), {"flow": centre})["flow"]


def batch(maps: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(maps))


def test_each_extractor_names_its_mirror_centre():
    assert OpticalFlow().mirror_centre() == 0.0
    assert FlowUVS().mirror_centre() == 0.0 and FlowUVS(normalize="minmax").mirror_centre() == 0.5
    assert ReleaseFlow().mirror_centre() == 0.5
    assert ReleaseApex().mirror_centre() is None  # an image: mirrored, nothing negated


def test_flipped_flow_in_pixels_is_the_flow_of_the_mirrored_face():
    raw = [motion(s) for s in range(4)]
    got = flip_all(batch(raw), OpticalFlow().mirror_centre())
    torch.testing.assert_close(got, batch([mirrored_motion(m) for m in raw]), atol=1e-5, rtol=1e-5)


def test_flipped_release_map_is_the_release_map_of_the_mirrored_face():
    raw = [motion(s) for s in range(4)]
    maps = batch([minmax_normalise(m) for m in raw])
    got = flip_all(maps, ReleaseFlow().mirror_centre())
    torch.testing.assert_close(got, batch([minmax_normalise(mirrored_motion(m)) for m in raw]), atol=1e-5, rtol=1e-5)
    assert got.min() >= 0 and got.max() <= 1  # the old u -> -u gave maps in [-1, 0]


def test_flipped_standardised_map_is_the_standardised_map_of_the_mirrored_face():
    raw = [motion(s) for s in range(6)]
    maps = batch([minmax_normalise(m) for m in raw])
    norm = Normalizer.fit({"flow": maps})
    centre = mirror_value(norm, "flow", ReleaseFlow().mirror_centre())
    got = flip_all(norm("flow", maps), centre)
    expect = norm("flow", batch([minmax_normalise(mirrored_motion(m)) for m in raw]))
    torch.testing.assert_close(got, expect, atol=1e-4, rtol=1e-4)
    assert mirror_value(Identity(), "flow", 0.5) == 0.5


def test_a_flip_needs_a_mirror_centre_for_each_flow_stream():
    with pytest.raises(ValueError, match="not flow maps"):
        FLIP({"flow": torch.zeros(2, 3, 4, 4)}, torch.Generator(), {"apex": 0.0})


RELEASE = shared_dir() / "data" / "megc2019-flow-smic" / "u_v_os"


@pytest.mark.skipif(not RELEASE.is_dir(), reason="the SMIC flow release is not beside the repository")
def test_flipped_real_release_maps_have_the_statistics_of_real_maps():
    """On the real maps: a flipped map's u channel has the range and mean of the maps the release
    holds (its per-map mean of u lies within the release's own range of per-map means)."""
    maps = batch([np.moveaxis(read_image(p), -1, 0).astype(np.float32) for p in sorted(RELEASE.glob("*.png"))])
    flipped = flip_all(maps, ReleaseFlow().mirror_centre())
    assert flipped.min() >= 0 and flipped.max() <= 1
    means, flipped_means = maps[:, 0].mean(dim=(1, 2)), flipped[:, 0].mean(dim=(1, 2))
    assert means.min() <= flipped_means.min() + 0.05 and flipped_means.max() <= means.max() + 0.05
    assert abs(float(flipped_means.mean()) - float(means.mean())) < 0.1
