"""Configuration of the synthetic cores: grid, channels, parameter ranges, observation.

One frozen dataclass holds everything that defines a synthetic dataset, with units in the
field names, so a shard can record it as plain JSON and a test can build a tiny variant with
:func:`dataclasses.replace`. Ranges are (low, high) pairs from which each core draws its own
value; :data:`LOG_SAMPLED` ranges are drawn uniformly in log.

Default grid, chosen so the workflow's default synthesises a few hundred cores in seconds and
trains the cnn3d on two CPU cores in minutes: 32^3 voxels over 0.2 pc (6.25 mpc = 1,290 au per
voxel, 9.2 arcsec at 140 pc; the 2-voxel beam, 18 arcsec, is of the order of a 30 m dish's
26 arcsec at 93 GHz), 32 channels of 0.175 km/s, and 16 line-of-sight profile bins of 2
voxels. The channels span +-2.8 km/s: the turbulent dispersion over the box is 0.6 km/s
(Larson), so a core's emission, with its systemic, infall and rotation offsets and 4-sigma
line wings, stays inside.
Two voxels per profile bin because a 32-channel optically thin spectrum cannot resolve 32
independent positions along the line of sight: only velocity separates them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from astroflow.cubes.line import (
    TRACERS,
    Tracer,
    intensity_per_column,
    larson_dispersion,
    thermal_dispersion,
)

PC_CM = 3.0856775814913673e18
"""One parsec in cm."""

MIN_LINE_SAMPLING = 0.7
"""Smallest line width, in channel widths, at which channel sums conserve the line integral."""

RANGE_FIELDS = (
    "central_density_cm3",
    "flat_radius_pc",
    "eta",
    "log_density_sigma",
    "systemic_velocity_kms",
    "infall_speed_kms",
    "rotation_kms_per_pc",
)
LOG_SAMPLED = frozenset({"central_density_cm3", "flat_radius_pc"})
"""Ranges spanning decades, drawn uniformly in log."""


@dataclass(frozen=True)
class CoreConfig:
    """Everything that defines a synthetic core dataset (units in the names).

    Grid: ``grid_size`` voxels per side over ``box_size_pc``; the turbulent fields are drawn
    in a box ``padding`` times larger and cropped. Channels: ``n_channels`` of
    ``channel_width_kms`` centred on ``channel_center_kms``. Targets: ``n_bins`` profile bins
    along the line of sight (``grid_size`` must be a multiple).

    Core, per-core ranges: central H2 density, flat radius, outer index ``eta`` of
    n_c / (1 + (r / R_flat)^2)^(eta / 2); centre offset from the box centre up to
    ``center_offset_pc`` per axis; ``log_density_sigma``, the dispersion of ln density of the
    turbulent factor, whose 3D power spectrum is |k|^-``log_density_slope``; systemic velocity,
    peak infall speed (reached at R_flat) and solid-body rotation rate about a random axis. The
    turbulent velocity follows Larson's sigma(l) = ``larson_coefficient_kms`` (l / pc) ^
    ``larson_exponent`` over the box; the same relation at the voxel size gives the sub-voxel
    non-thermal width.

    Observation: ``tracer`` at ``temperature_k`` (thermal width, LTE excitation), Gaussian beam
    of ``beam_fwhm_pc`` (0: none), Gaussian noise of ``noise_rms_k`` per channel (0: none),
    ``distance_pc`` for the angular scale of FITS files.
    """

    grid_size: int = 32
    box_size_pc: float = 0.2
    padding: float = 2.0
    n_channels: int = 32
    channel_width_kms: float = 0.175
    channel_center_kms: float = 0.0
    n_bins: int = 16
    tracer: str = "N2H+"
    temperature_k: float = 10.0
    central_density_cm3: tuple[float, float] = (3.0e4, 1.0e6)
    flat_radius_pc: tuple[float, float] = (0.01, 0.04)
    eta: tuple[float, float] = (2.0, 4.0)
    center_offset_pc: float = 0.02
    log_density_sigma: tuple[float, float] = (0.2, 0.6)
    log_density_slope: float = 11.0 / 3.0
    systemic_velocity_kms: tuple[float, float] = (-0.2, 0.2)
    infall_speed_kms: tuple[float, float] = (0.0, 0.2)
    rotation_kms_per_pc: tuple[float, float] = (0.0, 2.0)
    larson_coefficient_kms: float = 1.1
    larson_exponent: float = 0.38
    beam_fwhm_pc: float = 0.0125
    noise_rms_k: float = 0.05
    distance_pc: float = 140.0

    def __post_init__(self) -> None:
        for name in RANGE_FIELDS:
            value = getattr(self, name)
            if len(value) != 2 or not value[0] <= value[1]:
                raise ValueError(f"core config '{name}' must be a (low, high) pair, got {value}")
            object.__setattr__(self, name, (float(value[0]), float(value[1])))
            if name in LOG_SAMPLED and not value[0] > 0:
                raise ValueError(f"core config '{name}' is sampled in log: needs low > 0")
        if self.grid_size < 8 or self.grid_size % self.n_bins:
            raise ValueError(
                f"core config 'grid_size' ({self.grid_size}) must be >= 8 and a multiple of "
                f"'n_bins' ({self.n_bins})"
            )
        if self.padded_size < self.grid_size:
            raise ValueError(f"core config 'padding' must be >= 1, got {self.padding}")
        if self.tracer not in TRACERS:
            raise ValueError(f"core config 'tracer' {self.tracer!r} unknown; have {list(TRACERS)}")
        positive = ("box_size_pc", "channel_width_kms", "temperature_k", "distance_pc")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"core config '{name}' must be positive")
        if min(self.beam_fwhm_pc, self.noise_rms_k, self.center_offset_pc) < 0:
            raise ValueError("core config beam, noise and centre offset must be >= 0")
        if self.line_sigma_kms < MIN_LINE_SAMPLING * self.channel_width_kms:
            raise ValueError(
                f"core config: the line width {self.line_sigma_kms:.3f} km/s is below "
                f"{MIN_LINE_SAMPLING} 'channel_width_kms' ({self.channel_width_kms}); channel "
                "sums would not conserve the line integral (use narrower channels)"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> CoreConfig:
        """Build from plain data (a workflow config section, a shard's JSON); unknown keys fail."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown core config key(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (tuples as lists), the inverse of :meth:`from_mapping`."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @property
    def padded_size(self) -> int:
        """Side of the padded box in voxels, rounded up to an even number for the FFT."""
        return 2 * math.ceil(self.grid_size * self.padding / 2)

    @property
    def voxel_pc(self) -> float:
        return self.box_size_pc / self.grid_size

    @property
    def voxel_cm(self) -> float:
        return self.voxel_pc * PC_CM

    @property
    def tracer_constants(self) -> Tracer:
        return TRACERS[self.tracer]

    @property
    def channels_kms(self) -> np.ndarray:
        """Channel centres (n_channels,) in km/s, ascending."""
        offsets = np.arange(self.n_channels) - (self.n_channels - 1) / 2
        return self.channel_center_kms + self.channel_width_kms * offsets

    @property
    def bin_centers_pc(self) -> np.ndarray:
        """Line-of-sight profile bin centres (n_bins,) in pc from the box's mid-plane."""
        width = self.box_size_pc / self.n_bins
        return width * (np.arange(self.n_bins) + 0.5) - self.box_size_pc / 2

    @property
    def thermal_sigma_kms(self) -> float:
        return thermal_dispersion(self.tracer_constants, self.temperature_k)

    @property
    def subvoxel_sigma_kms(self) -> float:
        """Non-thermal width inside one voxel: Larson's relation at the voxel size."""
        return larson_dispersion(self.voxel_pc, self.larson_coefficient_kms, self.larson_exponent)

    @property
    def box_sigma_kms(self) -> float:
        """Turbulent velocity dispersion over the box (Larson's relation at the box size)."""
        return larson_dispersion(
            self.box_size_pc, self.larson_coefficient_kms, self.larson_exponent
        )

    @property
    def line_sigma_kms(self) -> float:
        """Width of every voxel's line: thermal and sub-voxel non-thermal in quadrature."""
        return math.hypot(self.thermal_sigma_kms, self.subvoxel_sigma_kms)

    @property
    def kappa(self) -> float:
        """Integrated intensity per H2 column, K km/s per cm^-2."""
        return intensity_per_column(self.tracer_constants, self.temperature_k)
