"""Counterparts keep each map's pixel values and power spectrum and add non-Gaussian structure.

The maps are standardized Gaussian random fields with the synthetic Mgas spectrum, i.e. what
log10 Mgas of the embedded default looks like. For a Gaussian field |grad f|^2 is exponentially
distributed (chi-squared with two degrees of freedom), so its coefficient of variation is 1;
the flow concentrates gradients onto the ridges between cells and pushes it above 1.
"""

import numpy as np
import pytest

from astroflow.maps import surrogates
from astroflow.maps.power_spectrum import (
    gaussian_random_field,
    input_power_spectrum,
    power_spectrum_2d,
)
from astroflow.maps.surrogates import counterparts

BOX = 25.0


def gaussian_maps(n=12, channels=1, size=64, seed=0):
    rng = np.random.default_rng(seed)
    g = gaussian_random_field(
        size, BOX, lambda k: input_power_spectrum(k, 0.3, 0.8), rng, size=n * channels
    )
    g = (g - g.mean()) / g.std()
    return g.reshape(n, channels, size, size).astype(np.float32)


def gradient_intermittency(maps):
    """Coefficient of variation of |grad f|^2 (central differences) per map and channel."""
    gy = np.roll(maps, -1, -2) - np.roll(maps, 1, -2)
    gx = np.roll(maps, -1, -1) - np.roll(maps, 1, -1)
    g2 = (gy.astype(np.float64) ** 2 + gx**2).reshape(*maps.shape[:2], -1)
    return g2.std(axis=-1) / g2.mean(axis=-1)


def test_strength_zero_returns_the_maps():
    maps = gaussian_maps(n=4, channels=2)
    np.testing.assert_allclose(counterparts(maps, 0.0), maps, atol=1e-6)


def test_pixel_values_are_a_permutation_per_map_and_channel():
    maps = gaussian_maps(n=5, channels=2)
    out = counterparts(maps, 2.0)
    assert out.shape == maps.shape and out.dtype == np.float32
    flat = (-1, maps.shape[-1] ** 2)
    np.testing.assert_array_equal(
        np.sort(out.reshape(flat), axis=-1), np.sort(maps.reshape(flat), axis=-1)
    )
    # ... and not the identity permutation.
    assert np.abs(out - maps).mean() > 0.3


@pytest.mark.parametrize("strength", [0.5, 2.0])
def test_binned_power_spectrum_matches_per_map(strength):
    maps = gaussian_maps()
    _, p_in, _ = power_spectrum_2d(maps, BOX)
    _, p_out, _ = power_spectrum_2d(counterparts(maps, strength), BOX)
    log_ratio = np.log(p_out / p_in)  # (maps, channel, 32 bins of one k_f)
    # Measured: rms 0.0015, worst bin 0.015 at strength 2 after six IAAFT iterations; a
    # map-to-map scatter of P(k) is ~10% per bin, so the match is far below what P(k) can see.
    assert np.sqrt(np.mean(log_ratio**2)) < 0.004
    assert np.abs(log_ratio).max() < 0.03


def test_more_strength_more_non_gaussian():
    maps = gaussian_maps()
    cv = [gradient_intermittency(counterparts(maps, s)).mean() for s in (0.0, 1.0, 2.0, 4.0)]
    assert cv[0] == pytest.approx(1.0, abs=0.03)  # a Gaussian field
    assert np.all(np.diff(cv) > 0.02), cv
    # Measured 1.00, 1.03, 1.07, 1.11.
    assert cv[-1] - cv[0] > 0.08


def test_channels_share_the_flow():
    one = gaussian_maps(n=3)
    two = np.concatenate([one, one], axis=1)
    out = counterparts(two, 2.0)
    np.testing.assert_array_equal(out[:, 0], out[:, 1])
    # The flow follows the channel mean, which here is the map itself.
    np.testing.assert_allclose(out[:, :1], counterparts(one, 2.0), atol=1e-6)


def test_deterministic_and_independent_of_batching(monkeypatch):
    maps = gaussian_maps(n=7, size=32)
    whole = counterparts(maps, 1.5)
    np.testing.assert_array_equal(counterparts(maps, 1.5), whole)
    monkeypatch.setattr(surrogates, "CHUNK_MAPS", 3)
    np.testing.assert_allclose(counterparts(maps, 1.5), whole, atol=1e-6)
    singles = np.concatenate([counterparts(maps[i : i + 1], 1.5) for i in range(len(maps))])
    np.testing.assert_allclose(singles, whole, atol=1e-6)
    np.testing.assert_allclose(counterparts(maps[4:6], 1.5), whole[4:6], atol=1e-6)


@pytest.mark.parametrize(
    ("maps", "strength", "match"),
    [
        (np.zeros((2, 16, 16), np.float32), 1.0, r"\(n, C, N, N\)"),
        (np.zeros((2, 1, 16, 8), np.float32), 1.0, r"\(n, C, N, N\)"),
        (np.zeros((2, 1, 16, 16), np.float32), -1.0, "strength"),
        (np.full((2, 1, 16, 16), np.nan, np.float32), 1.0, "finite"),
    ],
)
def test_bad_input(maps, strength, match):
    with pytest.raises(ValueError, match=match):
        counterparts(maps, strength)
