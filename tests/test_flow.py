"""Flow backends, optical strain, normalisation, magnification and interpolation (tiny images)."""
from __future__ import annotations

import numpy as np
import pytest

from mercore.features.flow import (FLOW_BACKENDS, backward_warp, compute_flow, minmax_normalise,
                                   optical_strain)
from mercore.features.interpolate import (FlowInterpolator, Interpolator, get_interpolator,
                                          interpolate_sequence)
from mercore.features.magnify import magnify


def texture(n: int, dx: float = 0.0, dy: float = 0.0, seed: int = 0) -> np.ndarray:
    """Smooth analytic texture (sum of sinusoids) translated by (dx, dy) pixels, values ~[0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    x, y = x - dx, y - dy
    img = np.full((n, n), 0.5)
    for _ in range(6):
        theta, lam, phase = rng.uniform(0, np.pi), rng.uniform(7, 14), rng.uniform(0, 2 * np.pi)
        img += 0.07 * np.sin(2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / lam + phase)
    return img.astype(np.float32)


def interior(a: np.ndarray, m: int = 12) -> np.ndarray:
    return a[..., m:-m, m:-m]


@pytest.mark.parametrize("backend", FLOW_BACKENDS)
def test_flow_subpixel_shift_sign_and_magnitude(backend: str) -> None:
    dx, dy = 0.6, -0.4  # content moves right and up
    flow = compute_flow(texture(48), texture(48, dx, dy), backend)
    assert flow.shape == (2, 48, 48) and flow.dtype == np.float32
    u, v = np.median(interior(flow[0])), np.median(interior(flow[1]))
    assert u == pytest.approx(dx, abs=0.12)
    assert v == pytest.approx(dy, abs=0.12)


def test_flow_errors() -> None:
    a = texture(16)
    with pytest.raises(ValueError, match="tvl1.*farneback.*dis"):
        compute_flow(a, a, "nope")
    with pytest.raises(ValueError, match="grayscale"):
        compute_flow(np.zeros((16, 16, 3), np.float32), np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="same shape"):
        compute_flow(a, texture(20))


def test_optical_strain_linear_field() -> None:
    a, b, c, d = 0.02, -0.03, 0.01, 0.005
    y, x = np.mgrid[0:20, 0:24].astype(np.float64)
    u = a * x + d * y
    v = b * y + c * x
    strain = optical_strain(np.stack([u, v]))
    assert strain.shape == (1, 20, 24) and strain.dtype == np.float32
    e_xy = 0.5 * (d + c)
    expected = np.sqrt(a ** 2 + b ** 2 + 2 * e_xy ** 2)
    np.testing.assert_allclose(strain, expected, rtol=1e-5)
    # a pure translation has no strain
    assert np.allclose(optical_strain(np.ones((2, 8, 8))), 0)
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        optical_strain(np.zeros((3, 8, 8)))


def test_dfrnet_strain_is_its_eq7_as_printed_which_lacks_the_cross_term() -> None:
    """DFR-Net's eq. 7 squares the two shears (1/2 (u_y^2 + v_x^2)); the tensor's magnitude squares
    their mean (2 e_xy^2 = 1/2 (u_y + v_x)^2). They agree without shear and differ on a rotation."""
    a, b, c, d = 0.02, -0.03, 0.01, 0.005
    y, x = np.mgrid[0:20, 0:24].astype(np.float64)
    flow = np.stack([a * x + d * y, b * y + c * x])
    np.testing.assert_allclose(optical_strain(flow, "dfrnet"), np.sqrt(a ** 2 + b ** 2 + 0.5 * (d ** 2 + c ** 2)),
                               rtol=1e-5)
    stretch = np.stack([a * x, b * y])
    np.testing.assert_allclose(optical_strain(stretch, "dfrnet"), optical_strain(stretch), rtol=1e-6)
    rotation = np.stack([-0.01 * y, 0.01 * x])  # du/dy = -dv/dx: no deformation at all
    assert np.allclose(optical_strain(rotation), 0, atol=1e-7)
    np.testing.assert_allclose(optical_strain(rotation, "dfrnet"), 0.01, rtol=1e-5)
    with pytest.raises(ValueError, match="tensor, dfrnet"):
        optical_strain(flow, "eq7")


def test_minmax_normalise() -> None:
    x = np.stack([np.arange(12.0).reshape(3, 4) - 5, np.full((3, 4), 7.0)])
    out = minmax_normalise(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert out[0].min() == 0 and out[0].max() == 1
    assert np.all(out[1] == 0)  # constant channel: safe, zeros
    with pytest.raises(ValueError):
        minmax_normalise(np.zeros((4, 4)))


def test_backward_warp_translation() -> None:
    img = texture(32)
    shifted = backward_warp(img, np.stack([np.full((32, 32), -1.0), np.zeros((32, 32))]))
    np.testing.assert_allclose(shifted[:, 1:], img[:, :-1], atol=1e-5)  # out(x) = img(x - 1)
    rgb = np.stack([img, img * 0.5, 1 - img], axis=-1)
    assert backward_warp(rgb, np.zeros((2, 32, 32))).shape == rgb.shape


def measured_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    flow = compute_flow(a, b, "tvl1")
    return np.array([np.median(interior(flow[0])), np.median(interior(flow[1]))])


def test_magnify_phi0_is_apex_and_phi_scales_motion() -> None:
    dx, dy = 0.5, 0.3
    onset, apex = texture(48), texture(48, dx, dy)
    flow = compute_flow(onset, apex, "tvl1")
    mag0 = magnify(onset, flow, 0.0)
    assert mag0.shape == onset.shape and mag0.dtype == np.float32
    assert np.abs(interior(mag0 - apex)).mean() < 0.3 * np.abs(interior(onset - apex)).mean()  # bilinear blur
    s1 = measured_shift(onset, magnify(onset, flow, 1.0))
    s3 = measured_shift(onset, magnify(onset, flow, 3.0))
    np.testing.assert_allclose(s1, 2 * np.array([dx, dy]), atol=0.15)
    np.testing.assert_allclose(s3, 4 * np.array([dx, dy]), atol=0.3)
    rgb = np.stack([onset] * 3, axis=-1)
    assert magnify(rgb, flow, 2.0).shape == rgb.shape
    with pytest.raises(ValueError):
        magnify(onset, flow[:, :10], 1.0)


def test_interpolate_sequence() -> None:
    dx = 1.0
    onset, apex = texture(48)[..., None], texture(48, dx, 0.0)[..., None]
    flow = compute_flow(onset[..., 0], apex[..., 0], "tvl1")
    seq = interpolate_sequence(onset, apex, 5, flow)
    assert seq.shape == (5, 48, 48, 1) and seq.dtype == np.float32
    np.testing.assert_array_equal(seq[0], onset)
    np.testing.assert_array_equal(seq[-1], apex)
    mid = measured_shift(onset[..., 0], seq[2, ..., 0])
    np.testing.assert_allclose(mid, [0.5 * dx, 0.0], atol=0.12)
    # grayscale (H, W) input is accepted as C = 1
    assert interpolate_sequence(onset[..., 0], apex[..., 0], 3, flow).shape == (3, 48, 48, 1)
    with pytest.raises(ValueError, match="length"):
        interpolate_sequence(onset, apex, 1, flow)


def test_interpolator_plugin_point() -> None:
    assert isinstance(get_interpolator("flow"), FlowInterpolator)
    with pytest.raises(ValueError, match="flow"):
        get_interpolator("ema-vfi")

    class Blend(Interpolator):
        def __call__(self, frame0, frame1, t, flow01):
            return (1 - t) * frame0 + t * frame1

    a, b = np.zeros((8, 8, 3), np.float32), np.ones((8, 8, 3), np.float32)
    seq = interpolate_sequence(a, b, 3, np.zeros((2, 8, 8), np.float32), Blend())
    np.testing.assert_allclose(seq[1], 0.5)
