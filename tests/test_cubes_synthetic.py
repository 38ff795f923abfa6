"""Physics of the synthetic cores, measured on their outputs and compared with formulas.

Every expected value is computed here from the formula it should obey (constants from scipy,
integrals with quad, fits with least squares), not read back from the generator's internals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from cube_factory import clean_config, tiny_config
from scipy import constants as sc
from scipy import integrate, optimize

from astroflow.cubes.config import PC_CM, CoreConfig
from astroflow.cubes.fields import cropped_inverse_fft
from astroflow.cubes.moments import moment_maps
from astroflow.cubes.params import PARAM_NAMES
from astroflow.cubes.synthetic import (
    CoreSynthesizer,
    column_density,
    convolve_beam,
    los_profiles,
)


def cores(config: CoreConfig, n: int, seed: int = 0):
    synth = CoreSynthesizer(config)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]
    return synth, [synth.synthesize(rng) for rng in rngs]


def voxel_centres(config: CoreConfig) -> np.ndarray:
    """Voxel centres in pc from the box centre, the convention of the params' centre offsets."""
    return (np.arange(config.grid_size) + 0.5) * config.box_size_pc / config.grid_size - (
        config.box_size_pc / 2
    )


def test_integrated_intensity_is_proportional_to_column_density():
    config = clean_config()
    _, sample = cores(config, 4)
    ratios = []
    for core in sample:
        m0, _, _ = moment_maps(core.cube, config.channels_kms)
        ratios.append(m0 / column_density(core.density, config.voxel_cm))
    ratios = np.array(ratios)
    kappa = ratios.mean()
    assert np.abs(ratios / kappa - 1).max() < 0.01  # the 1%; measured ~1e-5
    assert 5e-23 < kappa < 1e-22  # K km/s per cm^-2: N2H+ at 10 K, X = 1e-10


def test_second_moment_is_thermal_plus_nonthermal_plus_los_spread():
    """m2 = sigma_th^2 + sigma_nt^2 + density-weighted velocity variance along the column."""
    config = clean_config()
    sigma_th2 = sc.k * config.temperature_k / (29.0134 * sc.atomic_mass) / 1e6  # km^2/s^2
    sigma_nt2 = (1.1 * config.voxel_pc**0.38) ** 2  # Larson's relation at the voxel size
    _, sample = cores(config, 3, seed=1)
    for core in sample:
        _, m1, m2 = moment_maps(core.cube, config.channels_kms)
        rho, v = core.density.astype(np.float64), core.velocity.astype(np.float64)
        mean_v = (rho * v).sum(0) / rho.sum(0)
        spread = (rho * (v - mean_v) ** 2).sum(0) / rho.sum(0)
        np.testing.assert_allclose(m1, mean_v, atol=1e-3)
        np.testing.assert_allclose(m2, sigma_th2 + sigma_nt2 + spread, rtol=0.01)
        # The spread along a column is a real part of the width, not a rounding term.
        assert spread.mean() > 0.5 * (sigma_th2 + sigma_nt2)


def windowed_periodogram_expectation(slope: float, n: int, padded: int, taper: np.ndarray):
    """E|FFT(w g)|^2 at the crop's modes for g an n^3 crop of a field with P(k) ~ |k|^-slope
    (|k| up to the Nyquist sphere) on a periodic ``padded``^3 grid, w the separable taper.

    E = sum_r C(r) A(r) exp(-i k r) over lags |r_i| < n, with C the field's covariance (the
    inverse FFT of P on the padded grid) and A the taper's autocorrelation: the estimator's
    answer for the configured slope, window smoothing included, without random numbers.
    """
    k1 = np.fft.fftfreq(padded, 1 / padded)
    k = np.sqrt(k1[:, None, None] ** 2 + k1[None, :, None] ** 2 + k1[None, None, :] ** 2)
    power = np.where((k > 0) & (k <= padded / 2), np.maximum(k, 1) ** -slope, 0.0)
    covariance = np.fft.ifftn(power).real
    lags = np.arange(-(n - 1), n)
    at_lags = covariance[np.ix_(lags % padded, lags % padded, lags % padded)]
    a = np.correlate(taper, taper, "full")
    grid = np.zeros((2 * n,) * 3)
    grid[np.ix_(lags % (2 * n), lags % (2 * n), lags % (2 * n))] = (
        at_lags * a[:, None, None] * a[None, :, None] * a[None, None, :]
    )
    return np.fft.fftn(grid).real[::2, ::2, ::2]  # crop mode m is lag-grid mode 2 m


@pytest.mark.parametrize("slope", [3.0, 11.0 / 3.0])
def test_log_density_power_spectrum_slope(slope):
    """Slope of the shell-averaged spectrum of ln(n / n_smooth) over 4 <= k/k_f <= 12.

    The crop is not periodic, so it is tapered with a Hann window before the FFT. The window
    smooths the spectrum over ~2 k_f, which steepens a steep power law by ~0.1 at these k; the
    measurement is therefore compared with the same estimator's expectation for the configured
    slope, and that expectation with the slope itself.
    """
    n = 32
    config = clean_config(
        grid_size=n, box_size_pc=0.2, log_density_sigma=(0.5, 0.5), log_density_slope=slope
    )
    synth, sample = cores(config, 12, seed=3)
    taper = np.hanning(n + 2)[1:-1]
    window = taper[:, None, None] * taper[None, :, None] * taper[None, None, :]
    power = 0.0
    for core in sample:
        g = np.log(core.density / synth.smooth_density(core.params), dtype=np.float64)
        power = power + np.abs(np.fft.fftn((g - g.mean()) * window)) ** 2
    expected = windowed_periodogram_expectation(slope, n, config.padded_size, taper)
    k1 = np.fft.fftfreq(n, 1 / n)
    k = np.sqrt(k1[:, None, None] ** 2 + k1[None, :, None] ** 2 + k1[None, None, :] ** 2)
    shells = np.rint(k).astype(int)
    fit = np.arange(4, 13)
    log_k = np.log([k[shells == s].mean() for s in fit])

    def fitted_slope(p: np.ndarray) -> float:
        return -np.polyfit(log_k, np.log([p[shells == s].mean() for s in fit]), 1)[0]

    assert fitted_slope(power) == pytest.approx(fitted_slope(expected), abs=0.1)
    assert fitted_slope(expected) == pytest.approx(slope, abs=0.15)


def test_smooth_component_radial_profile_matches_plummer():
    """With no turbulence the density is the Plummer-like law around the stated centre: a
    least-squares fit of the radial profile (every voxel's density against its distance from
    the centre in the parameters) recovers n_c, R_flat and eta from a generic first guess."""
    config = clean_config(log_density_sigma=(0.0, 0.0))
    _, sample = cores(config, 3, seed=2)
    x = voxel_centres(config)

    def log_law(r, log_nc, flat, eta):
        return log_nc - eta / 2 * np.log1p((r / flat) ** 2)

    for core in sample:
        p = dict(zip(PARAM_NAMES, core.params, strict=True))
        r = np.sqrt(
            (x - p["center_z"])[:, None, None] ** 2
            + (x - p["center_y"])[None, :, None] ** 2
            + (x - p["center_x"])[None, None, :] ** 2
        )
        fitted, _ = optimize.curve_fit(
            log_law, r.ravel(), np.log(core.density.ravel()), p0=(np.log(1e5), 0.01, 3.0)
        )
        assert math.exp(fitted[0]) == pytest.approx(p["central_density"], rel=1e-3)
        assert fitted[1] == pytest.approx(p["flat_radius"], rel=1e-3)
        assert fitted[2] == pytest.approx(p["eta"], rel=1e-3)


def test_column_density_from_the_spectra_matches_the_projected_plummer_law():
    """Moment 0 / kappa of a smooth core equals the integral of the Plummer-like law along the
    line of sight through the box (quad), at every pixel: the observable closes the loop."""
    config = clean_config(
        grid_size=32, box_size_pc=0.2, log_density_sigma=(0.0, 0.0), flat_radius_pc=(0.02, 0.03)
    )
    synth, sample = cores(config, 1, seed=4)
    core = sample[0]
    p = dict(zip(PARAM_NAMES, core.params, strict=True))
    m0, _, _ = moment_maps(core.cube, config.channels_kms)
    measured = m0 / synth.voxel_intensity * config.voxel_cm  # cm^-2
    x = voxel_centres(config)
    half = config.box_size_pc / 2
    for iy, ix in [(16, 16), (10, 20), (3, 28), (0, 0)]:
        b2 = (x[iy] - p["center_y"]) ** 2 + (x[ix] - p["center_x"]) ** 2

        def law(z, b2=b2):
            return p["central_density"] * (
                1 + (b2 + (z - p["center_z"]) ** 2) / p["flat_radius"] ** 2
            ) ** (-p["eta"] / 2)

        expected = integrate.quad(law, -half, half, epsabs=0, epsrel=1e-9)[0] * PC_CM
        assert measured[iy, ix] == pytest.approx(expected, rel=0.01)


def test_turbulent_velocity_follows_larson_over_the_box_and_half_box():
    """Dispersion about the box mean, averaged over draws: Larson's 1.1 km/s (L/pc)^0.38 at the
    box size L (to the sampling error). At L/2 the field is a few % above Larson's value: the
    padded box (2 L) holds no longer modes, which removes more variance from the L box."""
    config = tiny_config()
    synth = CoreSynthesizer(config)
    rng = np.random.default_rng(5)
    h = config.grid_size // 2
    box, half = [], []
    for _ in range(200):
        v = synth.velocity_field.draw(rng).astype(np.float64)
        box.append(v.var())
        half.extend(
            v[a : a + h, b : b + h, c : c + h].var() for a in (0, h) for b in (0, h) for c in (0, h)
        )
    length = config.box_size_pc
    assert math.sqrt(np.mean(box)) == pytest.approx(1.1 * length**0.38, rel=0.03)
    assert math.sqrt(np.mean(half)) == pytest.approx(1.1 * (length / 2) ** 0.38, rel=0.08)


def test_noise_is_added_on_top_of_the_same_core_with_the_configured_rms():
    noisy_config, clean = tiny_config(noise_rms_k=0.1), tiny_config(noise_rms_k=0.0)
    noisy_core = CoreSynthesizer(noisy_config).synthesize(np.random.default_rng(7))
    clean_core = CoreSynthesizer(clean).synthesize(np.random.default_rng(7))
    np.testing.assert_array_equal(noisy_core.density, clean_core.density)
    residual = (noisy_core.cube - clean_core.cube).astype(np.float64)
    assert residual.std() == pytest.approx(0.1, rel=0.03)
    assert abs(residual.mean()) < 0.005


def test_beam_has_the_configured_width_and_commutes_with_the_line_integral():
    config = tiny_config(noise_rms_k=0.0)
    synth = CoreSynthesizer(config)
    point = np.zeros((1, 41, 41), np.float32)
    point[0, 20, 20] = 1.0
    image = convolve_beam(point, synth.beam_sigma_pixels)[0].astype(np.float64)
    offsets = np.arange(41) - 20
    variance = (image.sum(0) * offsets**2).sum() / image.sum()
    fwhm_pc = math.sqrt(8 * math.log(2) * variance) * config.voxel_pc
    assert fwhm_pc == pytest.approx(config.beam_fwhm_pc, rel=0.01)
    core = synth.synthesize(np.random.default_rng(8))
    m0, _, _ = moment_maps(core.cube, config.channels_kms)
    column = column_density(core.density, config.voxel_cm)
    expected = convolve_beam(column[None] * np.float32(config.kappa), synth.beam_sigma_pixels)[0]
    np.testing.assert_allclose(m0, expected, rtol=1e-3, atol=1e-4 * expected.max())


def test_profiles_bin_the_column_and_conserve_mass_and_momentum():
    config = clean_config()
    _, (core,) = cores(config, 1, seed=9)
    density, velocity = los_profiles(core.density, core.velocity, config.n_bins)
    assert density.shape == velocity.shape == (config.n_bins, 16, 16)
    rho, v = core.density.astype(np.float64), core.velocity.astype(np.float64)
    per_bin = config.grid_size // config.n_bins
    np.testing.assert_allclose(density.sum(0) * per_bin, rho.sum(0), rtol=1e-5)
    np.testing.assert_allclose(
        (density * velocity).sum(0) * per_bin, (rho * v).sum(0), rtol=1e-4, atol=1e-3
    )
    with pytest.raises(ValueError, match="bins"):
        los_profiles(core.density, core.velocity, 5)


def test_parameters_lie_in_their_ranges_and_the_axis_is_a_unit_vector():
    config = tiny_config()
    synth = CoreSynthesizer(config)
    rng = np.random.default_rng(10)
    params = np.array([synth.sample_params(rng) for _ in range(200)])
    p = dict(zip(PARAM_NAMES, params.T, strict=True))
    for name, key in [("central_density", "central_density_cm3"), ("eta", "eta")]:
        low, high = getattr(config, key)
        assert low <= p[name].min() and p[name].max() <= high
    # log-uniform: the median sits at the geometric mean of the range
    assert np.median(p["central_density"]) == pytest.approx(
        math.sqrt(np.prod(config.central_density_cm3)), rel=0.3
    )
    np.testing.assert_allclose(np.sqrt(p["axis_x"] ** 2 + p["axis_y"] ** 2 + p["axis_z"] ** 2), 1)
    assert np.abs(p["center_x"]).max() <= config.center_offset_pc


def test_config_refuses_unresolved_lines_and_bad_ranges():
    with pytest.raises(ValueError, match="channel_width_kms"):
        tiny_config(channel_width_kms=0.5)
    with pytest.raises(ValueError, match="eta"):
        tiny_config(eta=(3.0, 2.0))
    with pytest.raises(ValueError, match="n_bins"):
        tiny_config(n_bins=5)
    with pytest.raises(ValueError, match="unknown core config key"):
        CoreConfig.from_mapping({"grid_sise": 16})
    assert CoreConfig.from_mapping(tiny_config().to_dict()) == tiny_config()


def quiet_config(**ranges):
    """A core without turbulence: Larson's coefficient ~0 leaves the thermal width alone, so
    the channels are narrowed to keep the line resolved. At 1e-6 km/s the turbulent field's
    large-scale modes tilt the moment-1 map by ~1e-5 km/s/pc, far below the 1e-3 tolerances
    (1e-4 km/s gave ~1e-3, a pass or fail by draw)."""
    fixed = {
        "log_density_sigma": (0.0, 0.0),
        "systemic_velocity_kms": (0.1, 0.1),
        "infall_speed_kms": (0.0, 0.0),
        "rotation_kms_per_pc": (0.0, 0.0),
        **ranges,
    }
    return clean_config(larson_coefficient_kms=1e-6, n_channels=64, channel_width_kms=0.03, **fixed)


def test_rotation_shows_as_the_moment_one_gradient_of_its_projected_axis():
    """Solid-body rotation Omega about axis a gives v_z = Omega (a_x y - a_y x) at every depth,
    so a plane fitted to the moment-1 map has slopes Omega a_x along y and -Omega a_y along x."""
    config = quiet_config(rotation_kms_per_pc=(3.0, 3.0))
    _, (core,) = cores(config, 1, seed=11)
    p = dict(zip(PARAM_NAMES, core.params, strict=True))
    _, m1, _ = moment_maps(core.cube, config.channels_kms)
    x = voxel_centres(config)
    design = np.column_stack(
        [np.ones(x.size**2), np.repeat(x, x.size), np.tile(x, x.size)]
    )  # columns: 1, y, x for m1.ravel() in (y, x) order
    (offset, slope_y, slope_x), *_ = np.linalg.lstsq(design, m1.ravel(), rcond=None)
    assert slope_y == pytest.approx(3.0 * p["axis_x"], abs=1e-3)
    assert slope_x == pytest.approx(-3.0 * p["axis_y"], abs=1e-3)
    assert offset == pytest.approx(
        0.1 - 3.0 * (p["axis_x"] * p["center_y"] - p["axis_y"] * p["center_x"]), abs=1e-3
    )


def test_infall_moves_the_near_side_away_from_the_observer_at_the_stated_speed():
    """Along the column through the centre, gas in front of the centre (smaller z, nearer the
    observer) recedes and gas behind it approaches; the speed peaks at v_in at r = R_flat."""
    config = quiet_config(infall_speed_kms=(0.2, 0.2), flat_radius_pc=(0.015, 0.015))
    synth, (core,) = cores(config, 1, seed=12)
    p = dict(zip(PARAM_NAMES, core.params, strict=True))
    x = voxel_centres(config)
    iy, ix = np.argmin(np.abs(x - p["center_y"])), np.argmin(np.abs(x - p["center_x"]))
    infall = core.velocity[:, iy, ix] - 0.1
    in_front = x < p["center_z"]
    assert np.all(infall[in_front] > 0) and np.all(infall[~in_front] < 0)
    assert np.abs(infall).max() == pytest.approx(0.2, rel=0.05)


@pytest.mark.parametrize(("padded", "n"), [(64, 32), (40, 33), (16, 16)])
def test_cropped_inverse_fft_is_the_crop_of_the_full_transform(padded, n):
    rng = np.random.default_rng(padded + n)
    shape = (padded, padded, padded // 2 + 1)
    modes = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    before = modes.copy()
    full = np.fft.irfftn(modes.astype(np.complex128), s=(padded,) * 3, axes=(0, 1, 2))
    full = full[:n, :n, :n]
    cropped = cropped_inverse_fft(modes, n)
    assert cropped.shape == (n, n, n) and cropped.dtype == np.float32
    np.testing.assert_allclose(cropped, full, atol=2e-6 * np.abs(full).max())
    np.testing.assert_array_equal(modes, before)  # the generator reuses its mode buffer
