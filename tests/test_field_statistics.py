"""Emulator statistics on cases with known answers, and the two-point baseline's spectra."""

from __future__ import annotations

import numpy as np
import pytest

from astroflow.evaluation import fields as fs
from astroflow.evaluation.two_point import gaussian_fields
from astroflow.maps import power_spectrum as ps

BOX, N = 25.0, 64


def _maps(n: int, seed: int = 0) -> np.ndarray:
    """Three correlated log fields: gas, a noisy copy, an independent field."""
    rng = np.random.default_rng(seed)
    gas = ps.gaussian_random_field(N, BOX, lambda k: ps.input_power_spectrum(k, 0.3, 0.8), rng, n)
    noisy = gas + 0.5 * rng.standard_normal(gas.shape)
    other = rng.standard_normal(gas.shape)
    return np.stack([gas, noisy, other], axis=1)


def test_identical_sets_are_at_distance_zero():
    maps = _maps(4)
    out = fs.compare_sets(maps, maps.copy(), BOX, np.ones(3))
    assert np.all(out["spectrum"] == 0) and np.all(out["pdf"] == 0)
    assert np.all(out["correlation"] == 0)
    assert np.allclose(out["ratio"], 1.0)


def test_scaled_maps_have_the_squared_spectrum_ratio_and_shifted_maps_the_shift_as_w1():
    maps = _maps(3)
    out = fs.compare_sets(1.1 * maps, maps, BOX, np.ones(3))
    assert out["spectrum"] == pytest.approx(np.full(3, 0.21), rel=1e-9)
    assert np.allclose(out["correlation"], 0.0, atol=1e-12)  # r is scale-free
    shifted = fs.compare_sets(maps + 0.3, maps, BOX, np.array([1.0, 2.0, 0.5]))
    # W1 of a shifted distribution is the shift, in dex after undoing the standardization.
    assert shifted["pdf"] == pytest.approx([0.3, 0.6, 0.15], rel=1e-9)
    assert np.all(shifted["spectrum"] < 1e-12)  # the mean is removed before P(k)


def test_cross_correlation_of_a_field_with_itself_its_negative_and_an_independent_one():
    maps = _maps(8)
    same = np.stack([maps[:, 0], maps[:, 0], -maps[:, 0]], axis=1)
    r = fs.set_spectra(same, BOX)["r"]  # pairs (0, 1), (0, 2), (1, 2)
    assert np.allclose(r[0], 1.0) and np.allclose(r[1], -1.0) and np.allclose(r[2], -1.0)
    k, cross, _ = fs.cross_spectrum(maps[:, 0], maps[:, 0], BOX)
    assert np.allclose(cross, ps.power_spectrum_2d(maps[:, 0], BOX)[1])
    independent = fs.set_spectra(maps, BOX)["r"][1]  # gas and white noise
    mask = fs.well_sampled(fs.set_spectra(maps, BOX)["n_modes"])
    assert np.median(np.abs(independent[mask])) < 0.1


def test_pdf_distance_agrees_with_the_general_wasserstein_distance():
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(4)
    a, b = rng.lognormal(size=4000), rng.normal(1.0, 2.0, size=4000)
    assert fs.pdf_distance(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-9)
    c = rng.normal(0.5, 1.0, size=3000)  # unequal sizes: quantile functions on a fine grid
    assert fs.pdf_distance(a, c) == pytest.approx(wasserstein_distance(a, c), rel=0.01)


def test_well_sampled_bins_leave_out_the_largest_scales():
    _, _, n_modes = ps.power_spectrum_2d(np.zeros((N, N)), BOX)
    mask = fs.well_sampled(n_modes)
    assert not mask[:3].any() and mask[3:].all()


def test_gaussian_baseline_has_the_requested_spectra_and_cross_correlations():
    """The baseline's measured auto spectra and r(k) match those it was built from."""
    target = fs.set_spectra(_maps(16, seed=1), BOX)
    means = np.array([0.5, -1.0, 2.0])
    maps = gaussian_fields(
        target["k"], target["auto"], target["r"], means, 64, N, BOX, np.random.default_rng(2)
    )
    measured = fs.set_spectra(maps, BOX)
    mask = fs.well_sampled(target["n_modes"])
    for f in range(3):
        assert fs.spectrum_error(measured["auto"][f], target["auto"][f], target["n_modes"]) < 0.1
    assert np.max(np.abs(measured["r"] - target["r"])[:, mask]) < 0.1
    assert np.allclose(maps.mean(axis=(0, 2, 3)), means, atol=0.05)
    # Gaussian log fields: the pixel PDF is symmetric whatever the spectra.
    centred = maps[:, 0] - maps[:, 0].mean()
    assert abs(np.mean(centred**3) / np.mean(centred**2) ** 1.5) < 0.1
