"""Tiny synthetic-core configurations for the cube tests (16^3 voxels, 24 channels), and a
synthetic cube rewritten with a frequency axis, as a real observation would come.

The box is halved with the grid, so the voxel (6.25 mpc) and hence the line width are those of
the default grid; 24 channels of 0.2 km/s span +-2.4 km/s, wide enough for the 0.46 km/s
turbulent dispersion of a 0.1 pc box.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from astropy import constants
from astropy import units as u
from astropy.io import fits

from astroflow.cubes.config import CoreConfig
from astroflow.cubes.fits import resample_channels

TINY = CoreConfig(
    grid_size=16,
    box_size_pc=0.1,
    n_channels=24,
    channel_width_kms=0.2,
    n_bins=8,
    flat_radius_pc=(0.006, 0.02),
    center_offset_pc=0.01,
)


def tiny_config(**overrides: Any) -> CoreConfig:
    """The tiny configuration with ``overrides`` (any :class:`CoreConfig` field)."""
    return replace(TINY, **overrides)


def clean_config(**overrides: Any) -> CoreConfig:
    """Tiny, without beam and noise: the cube is the line physics alone."""
    return tiny_config(beam_fwhm_pc=0.0, noise_rms_k=0.0, **overrides)


def write_frequency_cube(
    example_fits: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    width_factor: float = 0.5,
    velocity_shift_kms: float = 0.0,
) -> Path:
    """Rewrite a synthetic example (VRAD axis in km/s) as an observatory might deliver it: a
    FREQ axis in Hz (descending, radio convention about RESTFRQ), channels ``width_factor``
    times as wide over a band 1.5 times as wide, and the source moved by
    ``velocity_shift_kms``."""
    with fits.open(example_fits) as hdul:
        header = hdul[0].header.copy()
        cube = hdul[0].data.astype(np.float64)
    width = header["CDELT3"]
    velocities = header["CRVAL3"] + width * np.arange(cube.shape[0])
    half_band = 0.75 * (velocities[-1] - velocities[0] + width)
    new_width = width * width_factor
    fine = np.arange(-half_band, half_band + 1e-9, new_width) + velocities.mean()
    resampled = resample_channels(cube, velocities, fine, fill_value=0.0)
    rest = header["RESTFRQ"]
    c_kms = constants.c.to_value(u.km / u.s)
    shifted = fine + velocity_shift_kms
    header.update(
        CTYPE3="FREQ",
        CUNIT3="Hz",
        CRPIX3=1.0,
        CRVAL3=rest * (1.0 - shifted[0] / c_kms),
        CDELT3=-rest * new_width / c_kms,
    )
    fits.PrimaryHDU(resampled.astype(np.float32), header).writeto(out_path, overwrite=True)
    return Path(out_path)
