"""Real cubes: the line is located before a network sees it; blank, empty, lineless and
out-of-band cubes are refused with one message naming the file and the config key."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from test_cubes_fits import foreign_header, gaussian_cube

from astroflow.cubes.emission import check_in_window, systemic_velocity
from astroflow.cubes.fits import FitsCubeError, read_ppv_fits
from astroflow.cubes.folder import real_cubes

CHANNELS = np.arange(-2.3, 2.31, 0.2)  # 24 training channels of 0.2 km/s around 0
VELO = {"CTYPE3": "VRAD", "CUNIT3": "km/s", "CRPIX3": 1, "CRVAL3": -10.0, "CDELT3": 0.1}
VELOCITIES = -10.0 + 0.1 * np.arange(200)


def write_cube(path, centre=0.0, noise=0.05, amplitude=3.0, shape=(200, 6, 6), seed=0):
    data = gaussian_cube(VELOCITIES[: shape[0]], centre, 0.3, np.full(shape[1:], amplitude))
    data = data + np.random.default_rng(seed).normal(0.0, noise, data.shape)
    header = foreign_header(VELO, shape)
    header["RESTFRQ"] = 93.17e9
    fits.PrimaryHDU(data.astype(np.float32), header).writeto(path)
    return path


def test_systemic_velocity_is_the_intensity_weighted_centre_of_the_line(tmp_path):
    path = write_cube(tmp_path / "hcn.fits", centre=-6.0)
    assert systemic_velocity(read_ppv_fits(path), path) == pytest.approx(-6.0, abs=0.05)


def test_a_line_outside_the_training_channels_is_refused_with_the_keys_to_move_it(tmp_path):
    path = write_cube(tmp_path / "off.fits", centre=7.0)
    with pytest.raises(FitsCubeError) as error:
        check_in_window(read_ppv_fits(path), path, CHANNELS, 0.0)
    message = str(error.value)
    assert "off.fits" in message and "7.00 km/s" in message
    assert "cubes.velocity_offset_kms to about 7.00" in message
    assert "cubes.center_on_emission: true" in message
    check_in_window(read_ppv_fits(path), path, CHANNELS, 7.0)  # the offset brings it in


@pytest.mark.parametrize(
    ("fill", "expected"),
    [(np.nan, "every pixel is blank"), (0.0, "no line emission"), (1.0, "no line emission")],
)
def test_blank_and_lineless_cubes_are_refused(tmp_path, fill, expected):
    path = tmp_path / "flat.fits"
    header = foreign_header(VELO, (200, 4, 4))
    header["RESTFRQ"] = 93.17e9
    fits.PrimaryHDU(np.full((200, 4, 4), fill, np.float32), header).writeto(path)
    with pytest.raises(FitsCubeError, match=f"flat.fits: {expected}"):
        check_in_window(read_ppv_fits(path), path, CHANNELS, 0.0)


def test_noise_alone_is_not_a_line(tmp_path):
    path = write_cube(tmp_path / "noise.fits", amplitude=0.0, noise=1.0)
    with pytest.raises(FitsCubeError, match="no line emission"):
        systemic_velocity(read_ppv_fits(path), path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "the file is empty"), (b"<html><body>Not found</body></html>", "not a FITS file")],
)
def test_empty_and_non_fits_files_are_named(tmp_path, content, expected):
    path = tmp_path / "broken.fits"
    path.write_bytes(content)
    with pytest.raises(FitsCubeError, match=f"broken.fits: {expected}"):
        read_ppv_fits(path)


def test_missing_cards_name_the_header_card_not_a_library_argument(tmp_path):
    path = tmp_path / "nounit.fits"
    header = foreign_header(VELO, (200, 4, 4))
    header["RESTFRQ"] = 93.17e9
    del header["BUNIT"]
    fits.PrimaryHDU(np.zeros((200, 4, 4), np.float32), header).writeto(path)
    with pytest.raises(FitsCubeError) as error:
        read_ppv_fits(path)
    assert "BUNIT card" in str(error.value) and "brightness_unit" not in str(error.value)


def test_every_fits_suffix_is_a_real_cube_and_two_of_one_stem_are_refused(tmp_path):
    for name in ("a.fits", "B.FITS", "c.fit", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert list(real_cubes(tmp_path)) == ["B", "a", "c"]
    (tmp_path / "a.FITS").write_bytes(b"")
    with pytest.raises(ValueError, match="a.FITS and .*a.fits|a.fits and .*a.FITS"):
        real_cubes(tmp_path)
    assert real_cubes(tmp_path / "missing") == {}
