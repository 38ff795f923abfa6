"""Line physics of the mock observation: tracer constants, line widths and optically thin spectra.

The emission model is the one an observer uses to turn an optically thin line into a column
density, run forwards: every voxel emits a Gaussian line whose integral (K km/s) is
proportional to its H2 column, with an excitation temperature equal to the kinetic one (LTE)
and the cosmic background subtracted, as an on-off observation does. The hyperfine structure
of the tracer is ignored: the whole rotational line is one Gaussian component.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BOLTZMANN_J_PER_K = 1.380649e-23
"""k_B, exact in the SI since 2019."""

ATOMIC_MASS_KG = 1.66053906892e-27
"""The atomic mass constant (CODATA 2022, as astropy has it)."""

T_CMB = 2.725
"""Cosmic background temperature (K), subtracted from the line as in an on-off observation."""

COLUMN_BLOCK = 128
"""Columns whose spectra :func:`optically_thin_spectra` accumulates at once (16 KiB of float32
per 32 channels: they stay in the first-level cache)."""

_CLIP = 4.0
"""Distance (in units of sqrt(2) sigma) beyond which a line is below e^-16 (1e-7) of its peak,
float32's rounding: a voxel farther than this from a run of channels is evaluated as if it were
this far."""

_EXPONENT_RANGE = 72.0
"""Largest -ln of a line value relative to its peak within a run of channels: float32 stays
normal (no slow subnormal arithmetic) down to e^-87, which leaves e^-15 for faint voxels."""

_PARTITION_LEVELS = 100
"""Rotational levels summed in the partition function; ample below 100 K."""


@dataclass(frozen=True)
class Tracer:
    """A linear-rotor molecule observed in its J = 1-0 line.

    ``rest_frequency_hz`` is the line frequency (FITS RESTFRQ), ``mass_u`` the molecular mass
    in atomic mass units (thermal width), ``einstein_a`` the spontaneous decay rate (s^-1),
    ``rotational_constant_hz`` B of E_J = h B J (J + 1) (partition function) and ``abundance``
    the number of molecules per H2 molecule.
    """

    name: str
    rest_frequency_hz: float
    mass_u: float
    einstein_a: float
    rotational_constant_hz: float
    abundance: float

    @property
    def upper_degeneracy(self) -> int:
        """2 J + 1 for the upper level J = 1."""
        return 3


N2H_PLUS = Tracer(
    name="N2H+",
    # J = 1-0 main hyperfine group (Caselli et al. 1995), B and A from the CDMS/LAMDA entries.
    rest_frequency_hz=93.1737637e9,
    mass_u=29.0134,
    einstein_a=3.628e-5,
    rotational_constant_hz=46586.8671e6,
    # Typical of dense prestellar cores (Caselli et al. 2002: 1e-10 to 5e-10).
    abundance=1.0e-10,
)

TRACERS: dict[str, Tracer] = {N2H_PLUS.name: N2H_PLUS}
"""Tracers by name (the ``tracer`` key of a core configuration)."""


def thermal_dispersion(tracer: Tracer, temperature_k: float) -> float:
    """One-dimensional thermal velocity dispersion sqrt(k_B T / m) of the tracer, in km/s.

    In plain SI numbers: every workflow parse checks the line width of the core settings, and
    importing astropy's units for it would double the parse time of a cluster job."""
    mass_kg = tracer.mass_u * ATOMIC_MASS_KG
    return math.sqrt(BOLTZMANN_J_PER_K * temperature_k / mass_kg) / 1e3


def larson_dispersion(scale_pc: float, coefficient_kms: float, exponent: float) -> float:
    """Larson's size-linewidth relation sigma(l) = coefficient (l / 1 pc)^exponent, in km/s."""
    return float(coefficient_kms * scale_pc**exponent)


def partition_function(tracer: Tracer, temperature_k: float) -> float:
    """Rotational partition function Q(T) = sum_J (2J + 1) exp(-h B J (J + 1) / k_B T)."""
    from astropy import constants as const  # only the synthesis needs astropy
    from astropy import units as u

    j = np.arange(_PARTITION_LEVELS)
    energy_k = (const.h * tracer.rotational_constant_hz * u.Hz / const.k_B).to_value(u.K)
    return float(np.sum((2 * j + 1) * np.exp(-energy_k * j * (j + 1) / temperature_k)))


def intensity_per_column(tracer: Tracer, temperature_k: float) -> float:
    """Integrated intensity per unit H2 column of the optically thin line, K km/s per cm^-2.

    W = h c^3 A / (8 pi k_B nu^2) N_u (1 - J(T_CMB) / J(T)), the optically thin radiative
    transfer solution in the Rayleigh-Jeans temperature scale with the background subtracted,
    with the upper-level column N_u = X N(H2) g_u exp(-h nu / k_B T) / Q(T) in LTE at T.
    """
    from astropy import constants as const
    from astropy import units as u

    nu = tracer.rest_frequency_hz * u.Hz
    upper_k = (const.h * nu / const.k_B).to_value(u.K)
    per_upper = const.h * const.c**3 * tracer.einstein_a / u.s / (8 * np.pi * const.k_B * nu**2)
    level = tracer.upper_degeneracy * np.exp(-upper_k / temperature_k)
    level /= partition_function(tracer, temperature_k)
    background = 1.0 - _radiation_temperature(upper_k, T_CMB) / _radiation_temperature(
        upper_k, temperature_k
    )
    kappa = per_upper * tracer.abundance * level * background
    return float(kappa.to_value(u.K * u.km / u.s * u.cm**2))


def optically_thin_spectra(
    intensity: np.ndarray, velocity: np.ndarray, channels: np.ndarray, sigma_kms: float
) -> np.ndarray:
    """Spectra (nv, ny, nx) in K of columns of voxels that each emit one Gaussian line.

    ``intensity`` (nz, ny, nx) is each voxel's integrated line intensity (K km/s), ``velocity``
    (nz, ny, nx) its line-of-sight velocity (km/s), ``channels`` (nv,) the evenly spaced channel
    centres (km/s) and ``sigma_kms`` the width every voxel's line has (thermal and sub-voxel
    turbulent). Lines are optically thin, so a column's spectrum is the sum of its voxels'
    lines. Channels are sampled at their centres, as radiative transfer codes compute
    intensities at given frequencies; the channel sum times the channel width then equals the
    integrated intensity when the line is resolved (sigma >= 0.7 channel widths: the error of
    the sum is below 2 exp(-2 pi^2 0.7^2) ~ 1e-4). Computed in float32 to a few 1e-6 of each
    line's peak by :func:`astroflow.cubes.kernels.line_sums`, in runs of channels short enough
    that its products stay within float32's normal range.
    """
    from astroflow.cubes.kernels import line_sums  # compiled: the workflow's parse skips it

    intensity = np.ascontiguousarray(intensity, dtype=np.float32)
    velocity = np.ascontiguousarray(velocity, dtype=np.float32)
    if intensity.shape != velocity.shape or intensity.ndim != 3:
        raise ValueError(
            f"intensity and velocity must be (nz, ny, nx) arrays of one shape, got "
            f"{intensity.shape} and {velocity.shape}"
        )
    channels = np.asarray(channels, dtype=np.float64)
    step = channels[1] - channels[0] if channels.size > 1 else 1.0
    if channels.size > 2 and np.abs(np.diff(channels) - step).max() > 1e-6 * abs(step):
        raise ValueError("channels must be evenly spaced")
    if step <= 0:
        raise ValueError("channels must increase")
    nz = intensity.shape[0]
    # In units of sqrt(2) sigma a line is exp(-(u - c)^2) times its peak.
    unit = 1.0 / (np.sqrt(2.0) * sigma_kms)
    u = velocity.reshape(nz, -1) * np.float32(unit)
    peak = intensity.reshape(nz, -1) / np.float32(np.sqrt(2.0 * np.pi) * sigma_kms)
    out = np.empty((channels.size, u.shape[1]), dtype=np.float32)
    run = 1 + int((math.sqrt(_EXPONENT_RANGE) - _CLIP) / (step * unit))
    line_sums(u, peak, channels[0] * unit, step * unit, run, _CLIP, COLUMN_BLOCK, out)
    return out.reshape(channels.size, *intensity.shape[1:])


def _radiation_temperature(upper_k: float, temperature_k: float) -> float:
    """Rayleigh-Jeans equivalent temperature J(T) = (h nu / k) / (exp(h nu / k T) - 1), K."""
    return upper_k / np.expm1(upper_k / temperature_k)
