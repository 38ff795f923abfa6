"""FITS in and out: WCS of written cubes, spectral-axis conversion and channel resampling.

Foreign cubes are written here with astropy directly (not with the package's writer), with
the axis types, units and orders real observatories use, and a Gaussian line whose centre,
width and integral are known.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from cube_factory import tiny_config
from scipy import constants as sc

from astroflow.cubes.fits import (
    FitsCubeError,
    load_ppv_on_channels,
    read_ppv_fits,
    resample_channels,
    write_profile_fits,
    write_shard_examples,
)
from astroflow.cubes.line import N2H_PLUS
from astroflow.cubes.moments import moment_maps
from astroflow.cubes.shards import read_cube_shard, write_cube_shard

REST = N2H_PLUS.rest_frequency_hz
C_KMS = sc.c / 1e3


def gaussian_cube(velocities, centre, sigma, amplitudes):
    """(nv, ny, nx) Gaussian lines of the given peak amplitudes (ny, nx), sampled at centres."""
    profile = np.exp(-0.5 * ((np.asarray(velocities) - centre) / sigma) ** 2)
    return profile[:, None, None] * np.asarray(amplitudes)[None]


def foreign_header(spectral: dict, shape, bunit="K") -> fits.Header:
    """A PPV header as an observatory pipeline writes it: sky axes 1-2, spectral axis 3."""
    nv, ny, nx = shape
    header = fits.Header()
    header.update(
        {
            "CTYPE1": "RA---SIN",
            "CUNIT1": "deg",
            "CRPIX1": nx / 2,
            "CRVAL1": 83.8,
            "CDELT1": -2e-3,
            "CTYPE2": "DEC--SIN",
            "CUNIT2": "deg",
            "CRPIX2": ny / 2,
            "CRVAL2": -5.4,
            "CDELT2": 2e-3,
            "SPECSYS": "LSRK",
            "BUNIT": bunit,
            **spectral,
        }
    )
    return header


def measured_line(cube, channels):
    m0, m1, m2 = moment_maps(cube, channels)
    return m0, m1, m2


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples")
    shard = write_cube_shard(tiny_config(), "test", 0, 3, 21, out / "shard.h5")
    return shard, write_shard_examples(shard, out / "fits", 2)


def test_synthetic_examples_open_with_astropy_with_a_velocity_axis_in_km_s(examples):
    shard_path, paths = examples
    config = tiny_config()
    assert [p.name for p in paths] == ["core_000.fits", "core_001.fits"]
    with fits.open(paths[1]) as hdul:
        header, data = hdul[0].header, hdul[0].data
    assert data.shape == (config.n_channels, config.grid_size, config.grid_size)
    assert (header["CTYPE3"], header["CUNIT3"], header["SPECSYS"], header["BUNIT"]) == (
        "VRAD",
        "km/s",
        "LSRK",
        "K",
    )
    assert u.Unit(header["CUNIT3"]) == u.km / u.s
    assert header["RESTFRQ"] == pytest.approx(REST)
    wcs = WCS(header)
    channel_velocities = wcs.spectral.pixel_to_world(np.arange(config.n_channels))
    np.testing.assert_allclose(channel_velocities.to_value(u.km / u.s), config.channels_kms)
    pixel_deg = math.degrees(config.voxel_pc / config.distance_pc)
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs.celestial), pixel_deg, rtol=1e-9)
    assert header["BMAJ"] == pytest.approx(math.degrees(config.beam_fwhm_pc / config.distance_pc))
    assert header["ASTROFLOW INDEX"] == 1
    # Back through the real-data path: the same cube on the same channels.
    cube, ppv = load_ppv_on_channels(paths[1], config.channels_kms)
    np.testing.assert_allclose(cube, read_cube_shard(shard_path).cubes[1], atol=1e-6)
    assert ppv.specsys == "LSRK" and ppv.valid.all()


def test_frequency_axis_with_finer_channels_is_converted_and_rebinned(tmp_path):
    """A line at 0.37 km/s, sigma 0.25 km/s, on a FREQ axis of 15 kHz channels (0.048 km/s,
    velocity decreasing with channel index), is read back on 0.2 km/s training channels with
    its centre, its integral, and its width plus the two channel widths' box variance."""
    dnu = 15e3
    nu = REST * (1 + np.arange(-150, 151) * dnu / REST)  # +-4.8 km/s about the rest frequency
    velocities = C_KMS * (1 - nu / REST)
    amplitudes = np.array([[1.0, 0.5, 2.0], [0.2, 1.5, 0.8]])
    data = gaussian_cube(velocities, 0.37, 0.25, amplitudes)
    spectral = {
        "CTYPE3": "FREQ",
        "CUNIT3": "Hz",
        "CRPIX3": 1.0,
        "CRVAL3": nu[0],
        "CDELT3": dnu,
        "RESTFRQ": REST,
    }
    path = tmp_path / "freq.fits"
    fits.PrimaryHDU(data.astype(np.float32), foreign_header(spectral, data.shape)).writeto(path)
    config = tiny_config()
    cube, ppv = load_ppv_on_channels(path, config.channels_kms)
    assert np.all(np.diff(ppv.velocities) > 0)  # reordered to ascending velocity
    m0, m1, m2 = measured_line(cube, config.channels_kms)
    dv_in = C_KMS * dnu / REST
    np.testing.assert_allclose(m1, 0.37, atol=2e-3)
    np.testing.assert_allclose(m0, amplitudes * 0.25 * math.sqrt(2 * math.pi), rtol=2e-3)
    np.testing.assert_allclose(m2, 0.25**2 + (dv_in**2 + 0.2**2) / 12, rtol=0.01)


def test_velocity_axis_in_m_per_s_with_coarser_channels_is_interpolated(tmp_path):
    """VRAD in m/s, 0.3 km/s channels, descending: onto finer 0.2 km/s channels by linear
    interpolation, which keeps the centre and integral and widens the line by less than 5%."""
    velocities = -np.arange(-12, 13) * 0.3  # km/s, descending
    data = gaussian_cube(velocities, -0.52, 0.4, np.full((2, 2), 1.3))
    spectral = {
        "CTYPE3": "VRAD",
        "CUNIT3": "m/s",
        "CRPIX3": 1.0,
        "CRVAL3": velocities[0] * 1e3,
        "CDELT3": -300.0,
        "RESTFRQ": REST,
    }
    path = tmp_path / "vrad.fits"
    fits.PrimaryHDU(data.astype(np.float32), foreign_header(spectral, data.shape)).writeto(path)
    config = tiny_config()
    cube, _ = load_ppv_on_channels(path, config.channels_kms)
    m0, m1, m2 = measured_line(cube, config.channels_kms)
    np.testing.assert_allclose(m1, -0.52, atol=5e-3)
    np.testing.assert_allclose(m0, 1.3 * 0.4 * math.sqrt(2 * math.pi), rtol=0.01)
    np.testing.assert_allclose(np.sqrt(m2), 0.4, rtol=0.05)


def test_velocity_offset_brings_a_source_to_the_training_window(tmp_path):
    """An LSR cube of a source at +7.2 km/s, optical-convention axis, is shifted by the
    systemic velocity; the optical-to-radio conversion uses RESTFRQ."""
    v_opt = 7.2 + np.arange(-40, 41) * 0.1  # km/s, optical convention
    v_radio = C_KMS * (1 - 1 / (1 + v_opt / C_KMS))
    data = gaussian_cube(v_radio, C_KMS * (1 - 1 / (1 + 7.2 / C_KMS)), 0.3, np.ones((2, 2)))
    spectral = {
        "CTYPE3": "VOPT",
        "CUNIT3": "km/s",
        "CRPIX3": 1.0,
        "CRVAL3": v_opt[0],
        "CDELT3": 0.1,
        "RESTFRQ": REST,
    }
    path = tmp_path / "vopt.fits"
    fits.PrimaryHDU(data.astype(np.float32), foreign_header(spectral, data.shape)).writeto(path)
    config = tiny_config()
    systemic_radio = C_KMS * (1 - 1 / (1 + 7.2 / C_KMS))
    cube, _ = load_ppv_on_channels(path, config.channels_kms, velocity_offset_kms=systemic_radio)
    _, m1, _ = measured_line(cube, config.channels_kms)
    np.testing.assert_allclose(m1, 0.0, atol=5e-3)


def test_stokes_axis_blanks_and_jy_per_beam(tmp_path):
    """A 4-axis cube (degenerate STOKES) in Jy/beam with a blanked pixel: converted to K with
    the radio astronomer's T = 1.222e3 I[mJy/beam] / (nu[GHz]^2 bmaj bmin [arcsec^2])."""
    velocities = np.arange(-20, 21) * 0.1
    data = gaussian_cube(velocities, 0.1, 0.3, np.full((3, 3), 0.02))  # Jy/beam
    data[:, 1, 2] = np.nan
    spectral = {
        "CTYPE3": "VRAD",
        "CUNIT3": "km/s",
        "CRPIX3": 1.0,
        "CRVAL3": velocities[0],
        "CDELT3": 0.1,
        "RESTFRQ": REST,
        "CTYPE4": "STOKES",
        "CRPIX4": 1.0,
        "CRVAL4": 1.0,
        "CDELT4": 1.0,
        "BMAJ": 10 / 3600,
        "BMIN": 6 / 3600,
    }
    path = tmp_path / "stokes.fits"
    header = foreign_header(spectral, data.shape, bunit="Jy/beam")
    fits.PrimaryHDU(data[None].astype(np.float32), header).writeto(path)
    ppv = read_ppv_fits(path)
    assert ppv.data.shape == (41, 3, 3)
    assert not ppv.valid[1, 2] and ppv.valid.sum() == 8
    assert np.all(ppv.data[:, 1, 2] == 0)
    expected_k = 1.222e3 * 20.0 / ((REST / 1e9) ** 2 * 10 * 6)
    assert ppv.data[21, 0, 0] == pytest.approx(expected_k, rel=2e-3)  # the 0.1 km/s peak
    assert ppv.celestial.pixel_n_dim == 2


def test_missing_rest_frequency_and_uncovered_channels_are_clear_errors(tmp_path):
    nu = REST + np.arange(-50, 51) * 20e3
    data = np.ones((nu.size, 2, 2), np.float32)
    spectral = {"CTYPE3": "FREQ", "CUNIT3": "Hz", "CRPIX3": 1.0, "CRVAL3": nu[0], "CDELT3": 20e3}
    path = tmp_path / "norest.fits"
    fits.PrimaryHDU(data, foreign_header(spectral, data.shape)).writeto(path)
    with pytest.raises(FitsCubeError, match="norest.fits: no rest frequency"):
        read_ppv_fits(path)
    config = tiny_config()  # channels span +-2.4 km/s; the cube only +-3.2 km/s of 0.064
    narrow = np.arange(-10, 11) * 0.1
    with pytest.raises(FitsCubeError, match="reach outside"):
        load_ppv_on_channels(path, narrow * 30, rest_frequency_hz=REST)
    cube, _ = load_ppv_on_channels(path, config.channels_kms, rest_frequency_hz=REST)
    np.testing.assert_allclose(cube, 1.0, rtol=1e-6)
    filled = resample_channels(np.ones((21, 1, 1)), narrow, config.channels_kms, fill_value=0.0)
    assert filled[0, 0, 0] == 0 and filled[12, 0, 0] == pytest.approx(1.0)


def test_resampling_is_identity_on_equal_grids_and_a_mean_on_coarser_ones():
    rng = np.random.default_rng(0)
    spectra = rng.normal(size=(30, 2, 3))
    v = np.arange(30) * 0.1
    np.testing.assert_allclose(resample_channels(spectra, v, v), spectra, atol=1e-6)
    coarse = resample_channels(spectra, v, v.reshape(10, 3).mean(1))
    np.testing.assert_allclose(coarse, spectra.reshape(10, 3, 2, 3).mean(1), atol=1e-6)
    # Half a channel off on equal widths: both rules give the midpoint average.
    shifted = resample_channels(spectra, v, v[:-1] + 0.05)
    np.testing.assert_allclose(shifted, (spectra[:-1] + spectra[1:]) / 2, atol=1e-6)


def test_predicted_profiles_keep_the_sky_wcs_and_get_a_depth_axis(examples, tmp_path):
    _, paths = examples
    config = tiny_config()
    ppv = read_ppv_fits(paths[0])
    profile = np.full((config.n_bins, config.grid_size, config.grid_size), 1e4, np.float32)
    valid = np.ones((config.grid_size,) * 2, bool)
    valid[0, 0] = False
    path = write_profile_fits(
        tmp_path / "density.fits",
        profile,
        ppv.celestial,
        config.bin_centers_pc,
        "density",
        valid=valid,
    )
    with fits.open(path) as hdul:
        header, data = hdul[0].header, hdul[0].data
    assert (header["BUNIT"], header["CTYPE3"], header["CUNIT3"]) == ("cm-3", "LOSDEPTH", "pc")
    wcs = WCS(header)
    np.testing.assert_allclose(wcs.celestial.wcs.crval, ppv.celestial.wcs.crval)
    np.testing.assert_allclose(wcs.celestial.wcs.cdelt, ppv.celestial.wcs.cdelt)
    depth = wcs.sub([3]).pixel_to_world_values(np.arange(config.n_bins))
    np.testing.assert_allclose(depth, config.bin_centers_pc)
    assert np.isnan(data[:, 0, 0]).all() and np.isfinite(data[:, 1:, :]).all()
    velocity = write_profile_fits(
        tmp_path / "v.fits", profile, ppv.celestial, config.bin_centers_pc, "velocity"
    )
    assert fits.getheader(velocity)["BUNIT"] == "km/s"
    with pytest.raises(ValueError, match="quantity"):
        write_profile_fits(tmp_path / "x.fits", profile, ppv.celestial, config.bin_centers_pc, "T")
