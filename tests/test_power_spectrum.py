"""The estimator, the input spectrum and Gaussian random fields close the loop on each other."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import j1

from astroflow.maps import cmd
from astroflow.maps import power_spectrum as ps

BOX = 25.0
N = 64
K_F = 2 * np.pi / BOX
K_NYQ = np.pi * N / BOX


def _spectrum(omega_m: float, sigma_8: float):
    return lambda k: ps.input_power_spectrum(k, omega_m, sigma_8)


def test_estimator_plane_wave_parseval_and_mode_average() -> None:
    """A cosine: all power in one bin, variance = sum P n_modes / L^2, k_mean mode-averaged."""
    amplitude, mode = 3.0, 5
    x = np.arange(N)
    wave = amplitude * np.cos(2 * np.pi * mode * x / N)[None, :] * np.ones((N, 1))
    k_mean, power, n_modes = ps.power_spectrum_2d(wave + 7.0, BOX)  # the mean is removed

    assert k_mean.shape == power.shape == n_modes.shape == (N // 2,)
    assert np.count_nonzero(power > 1e-20) == 1
    assert power[mode - 1] == pytest.approx(2 * amplitude**2 * BOX**2 / 4 / n_modes[mode - 1])
    assert np.sum(power * n_modes) / BOX**2 == pytest.approx(amplitude**2 / 2)
    # First annulus 0.5 <= |k|/k_f < 1.5: four modes at 1 and four at sqrt(2).
    assert n_modes[0] == 8
    assert k_mean[0] == pytest.approx(K_F * (1 + np.sqrt(2)) / 2)
    # Default bins are one k_f wide up to Nyquist and hold every mode of a complete annulus.
    assert np.all(np.abs(k_mean / K_F - np.arange(1, N // 2 + 1)) < 0.5)


def test_estimator_batches_and_coarse_bins_conserve_modes() -> None:
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((3, N, N))
    _, fine, n_fine = ps.power_spectrum_2d(maps, BOX)
    _, coarse, n_coarse = ps.power_spectrum_2d(maps, BOX, n_bins=8)
    assert fine.shape == (3, N // 2) and coarse.shape == (3, 8)
    assert n_fine.sum() == n_coarse.sum()
    np.testing.assert_allclose((coarse * n_coarse).sum(-1), (fine * n_fine).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(ps.power_spectrum_2d(maps[1], BOX)[1], fine[1], rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs", [{"field": np.zeros((8, 9))}, {"field": np.zeros((8, 8)), "n_bins": 5}]
)
def test_estimator_rejects_bad_input(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="field|n_bins"):
        ps.power_spectrum_2d(box_size=BOX, **kwargs)


def test_grf_spectrum_matches_input_within_mode_count_errors() -> None:
    """Averaged over R maps, each bin agrees with P(k_mean) within 4 sigma of its mode count.

    A bin of n_modes modes (k and -k counted apart) holds n_modes / 2 independent complex
    amplitudes whose |delta|^2 are exponential, so its mean over R maps has a relative error
    sqrt(2 / (n_modes R)). Well-sampled bins: n_modes >= 24 (|k| >= 4 k_f = 1.0 h/Mpc) up to
    Nyquist (8.0 h/Mpc); with R = 800 the 4-sigma tolerance is at most 4.1 %, plus 0.5 % for
    the curvature of P inside a bin (P(k_mean) vs the mode average, < 0.1 % there).
    """
    n_real = 800
    power = _spectrum(0.3, 0.8)
    fields = ps.gaussian_random_field(N, BOX, power, np.random.default_rng(42), size=n_real)
    assert fields.shape == (n_real, N, N) and fields.dtype == np.float64
    k_mean, measured, n_modes = ps.power_spectrum_2d(fields, BOX)
    mean_power = measured.mean(axis=0)

    good = n_modes >= 24
    assert k_mean[good].min() == pytest.approx(4 * K_F, rel=0.05)
    assert k_mean[good].max() < K_NYQ
    sigma = np.sqrt(2.0 / (n_modes * n_real))
    assert sigma[good].max() * 4 < 0.042
    ratio = mean_power / power(k_mean)
    assert np.all(np.abs(ratio[good] - 1) < 4 * sigma[good] + 0.005)
    # The scatter itself matches the mode-count prediction (chi^2 per bin ~ 1) and is unbiased.
    chi2 = np.mean(((ratio[good] - 1) / sigma[good]) ** 2)
    assert 0.4 < chi2 < 2.0
    assert np.average(ratio[good], weights=n_modes[good]) == pytest.approx(1.0, abs=0.005)
    # Variance of the maps = sum_k P / L^2, what the log-normal gas relies on.
    assert fields.var() == pytest.approx(ps.grid_variance(N, BOX, power), rel=0.01)


def test_grf_is_deterministic_and_rejects_bad_power() -> None:
    power = _spectrum(0.3, 0.8)
    a = ps.gaussian_random_field(32, BOX, power, np.random.default_rng(7))
    b = ps.gaussian_random_field(32, BOX, power, np.random.default_rng(7))
    assert a.shape == (32, 32)
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 1e-12  # the k = 0 mode is empty
    with pytest.raises(ValueError, match="non-negative"):
        ps.gaussian_random_field(32, BOX, lambda k: -np.ones_like(k), np.random.default_rng(0))


def test_amplitude_scales_as_sigma8_squared() -> None:
    k = np.geomspace(K_F, K_NYQ, 50)
    for omega_m in (0.1, 0.3, 0.5):
        ratio = ps.input_power_spectrum(k, omega_m, 0.9) / ps.input_power_spectrum(k, omega_m, 0.6)
        np.testing.assert_allclose(ratio, (0.9 / 0.6) ** 2, rtol=1e-12)


def test_sigma8_normalises_the_top_hat_variance() -> None:
    """Independent quadrature: int d^2k/(2pi)^2 P(k) [2 J1(kR)/(kR)]^2 = (bias sigma_8)^2."""
    k = np.geomspace(1e-5, 1e4, 20000)
    for omega_m, sigma_8 in ((0.1, 0.6), (0.45, 0.95)):
        x = k * ps.NORMALISATION_RADIUS
        integrand = k * ps.input_power_spectrum(k, omega_m, sigma_8) * (2 * j1(x) / x) ** 2
        variance = np.trapezoid(integrand, k) / (2 * np.pi)
        assert variance == pytest.approx((ps.TRACER_BIAS * sigma_8) ** 2, rel=1e-3)


def test_omega_m_moves_the_turnover_inside_the_sampled_range() -> None:
    """k_peak is proportional to Omega_m = Gamma / h and lies between k_f and the Nyquist mode
    of both the 64x64 and 32x32 maps of 25 Mpc/h, for the whole LH range of Omega_m."""
    k = np.geomspace(0.05, 20, 20000)
    lo, hi = cmd.LH_RANGES["Omega_m"]
    omegas = np.array([lo, 0.2, 0.3, hi])
    peaks = np.array([k[np.argmax(ps.input_power_spectrum(k, om, 0.8))] for om in omegas])
    np.testing.assert_allclose(peaks / omegas, peaks[0] / omegas[0], rtol=2e-3)
    assert peaks.min() > 2 * K_F and peaks.max() < np.pi * 32 / BOX
    # A shape change, not a rescaling: the high/low Omega_m ratio varies by > 10x across the map.
    kk = np.geomspace(K_F, K_NYQ, 30)
    ratio = ps.input_power_spectrum(kk, hi, 0.8) / ps.input_power_spectrum(kk, lo, 0.8)
    assert ratio.max() / ratio.min() > 10


def test_measured_turnover_follows_omega_m() -> None:
    """Averaged GRF spectra peak where the input does, for low and high Omega_m."""
    rng = np.random.default_rng(3)
    for omega_m in (0.15, 0.45):
        power = _spectrum(omega_m, 0.8)
        fields = ps.gaussian_random_field(N, BOX, power, rng, size=200)
        k_mean, measured, _ = ps.power_spectrum_2d(fields, BOX)
        k_peak_measured = k_mean[np.argmax(measured.mean(0))]
        k_peak_input = k_mean[np.argmax(power(k_mean))]
        assert abs(k_peak_measured - k_peak_input) <= 1.5 * K_F
    assert k_peak_measured > 2.5 * k_mean[np.argmax(_spectrum(0.15, 0.8)(k_mean))]
