"""Tiny synthetic-core configurations for the cube tests (16^3 voxels, 24 channels).

The box is halved with the grid, so the voxel (6.25 mpc) and hence the line width are those of
the default grid; 24 channels of 0.2 km/s span +-2.4 km/s, wide enough for the 0.46 km/s
turbulent dispersion of a 0.1 pc box.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from astroflow.cubes.config import CoreConfig

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
