"""Line constants against textbook formulas evaluated independently, and the spectra kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import constants as sc

from astroflow.cubes import line
from astroflow.cubes.line import N2H_PLUS


def test_thermal_width_of_n2h_plus_at_10_k():
    # sigma_th^2 = k_B T / m, m = 29.0134 u: 53.5 m/s, a quarter of the 10 K sound speed.
    expected = math.sqrt(sc.k * 10.0 / (29.0134 * sc.atomic_mass)) / 1e3
    assert line.thermal_dispersion(N2H_PLUS, 10.0) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.0535, abs=1e-4)


def test_partition_function_matches_the_high_temperature_rotor_expansion():
    # Q = kT/hB + 1/3 + hB/(15 kT) for a linear rotor (good to < 0.1% at kT/hB = 4.5).
    x = sc.h * N2H_PLUS.rotational_constant_hz / (sc.k * 10.0)
    assert line.partition_function(N2H_PLUS, 10.0) == pytest.approx(
        1 / x + 1 / 3 + x / 15, rel=1e-3
    )


def test_intensity_per_column_matches_the_optically_thin_formula():
    """W = h c^3 A / (8 pi k nu^2) N_u (1 - J(T_bg)/J(T)), recomputed with scipy constants."""
    t, nu = 10.0, N2H_PLUS.rest_frequency_hz
    x = sc.h * N2H_PLUS.rotational_constant_hz / (sc.k * t)
    q = 1 / x + 1 / 3 + x / 15
    upper = sc.h * nu / sc.k

    def radiation_temperature(temp):
        return upper / math.expm1(upper / temp)

    n_upper = N2H_PLUS.abundance * 3 * math.exp(-upper / t) / q  # per H2, J = 1 has g = 3
    w_si = sc.h * sc.c**3 * N2H_PLUS.einstein_a / (8 * math.pi * sc.k * nu**2)  # K m/s per m^-2
    expected = w_si * n_upper * (1 - radiation_temperature(2.725) / radiation_temperature(t))
    expected *= 1e4 / 1e3  # per cm^-2, in km/s
    assert line.intensity_per_column(N2H_PLUS, t) == pytest.approx(expected, rel=2e-3)
    # 1e22 cm^-2 of H2 gives ~0.7 K km/s, the brightness of a dense core in N2H+ (1-0).
    assert 0.5 < 1e22 * expected < 1.0


def test_larson_relation():
    assert line.larson_dispersion(1.0, 1.1, 0.38) == pytest.approx(1.1)
    assert line.larson_dispersion(0.1, 1.1, 0.38) == pytest.approx(1.1 * 0.1**0.38)


def test_one_voxel_gives_a_gaussian_of_the_right_area_centre_and_width():
    channels = np.arange(-40, 41) * 0.05
    intensity = np.zeros((3, 2, 2), np.float32)
    velocity = np.zeros((3, 2, 2), np.float32)
    intensity[1, 0, 1], velocity[1, 0, 1] = 2.0, 0.3
    spectra = line.optically_thin_spectra(intensity, velocity, channels, sigma_kms=0.2)
    assert spectra.shape == (81, 2, 2)
    s = spectra[:, 0, 1].astype(np.float64)
    assert s.sum() * 0.05 == pytest.approx(2.0, rel=1e-5)
    mean = (s * channels).sum() / s.sum()
    assert mean == pytest.approx(0.3, abs=1e-5)
    assert (s * (channels - mean) ** 2).sum() / s.sum() == pytest.approx(0.04, rel=1e-4)
    assert np.all(np.delete(spectra.reshape(81, 4), 1, axis=1) == 0)


def test_spectra_do_not_depend_on_the_column_block(monkeypatch):
    rng = np.random.default_rng(0)
    intensity = rng.random((8, 5, 6), dtype=np.float32)
    velocity = rng.normal(0, 0.5, (8, 5, 6)).astype(np.float32)
    channels = np.linspace(-2, 2, 17)
    whole = line.optically_thin_spectra(intensity, velocity, channels, 0.2)
    monkeypatch.setattr(line, "COLUMN_BLOCK", 7)  # 7 of the 30 columns per block
    np.testing.assert_allclose(
        line.optically_thin_spectra(intensity, velocity, channels, 0.2), whole, rtol=1e-6
    )


def test_spectra_match_the_gaussian_sum_channel_by_channel():
    """Every voxel-channel pair evaluated directly (float64) against the fast evaluation,
    with velocities far outside the band and lines too faint to matter included."""
    rng = np.random.default_rng(1)
    intensity = rng.lognormal(-2.0, 2.0, (6, 4, 5))
    intensity[0, 0, 0] = 0.0
    velocity = rng.normal(0.0, 1.0, (6, 4, 5))
    velocity[1, 1, 1] = 40.0
    channels = np.arange(-30, 31) * 0.07
    sigma = 0.1
    direct = (
        intensity
        / (math.sqrt(2 * math.pi) * sigma)
        * np.exp(-0.5 * ((channels[:, None, None, None] - velocity) / sigma) ** 2)
    ).sum(axis=1)
    fast = line.optically_thin_spectra(intensity, velocity, channels, sigma)
    np.testing.assert_allclose(fast, direct, rtol=0, atol=1e-5 * direct.max())
    with pytest.raises(ValueError, match="evenly spaced"):
        line.optically_thin_spectra(intensity, velocity, channels**3, sigma)
