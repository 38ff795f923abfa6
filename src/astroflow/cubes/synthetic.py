"""Synthetic prestellar cores and their mock PPV observations, one seeded core at a time.

A core on an n^3 grid (axes z, y, x; z along the line of sight, away from the observer):

- H2 density n(r) = n_c / (1 + (r / R_flat)^2)^(eta / 2) * exp(s - sigma_s^2 / 2): a Plummer-like
  profile (Whitworth & Ward-Thompson 2001) times a unit-mean log-normal factor, s a Gaussian
  field with 3D power spectrum |k|^-slope and point variance sigma_s^2;
- line-of-sight velocity v = v_sys + infall + rotation + turbulence: radial infall of speed
  v_in 2 (r / R_flat) / (1 + (r / R_flat)^2) (linear in the flat centre, peak v_in at R_flat,
  falling off outside), solid-body rotation Omega about a random axis, and a Gaussian field with
  |k|^-(3 + 2 a) spectrum, whose dispersion about its box mean is Larson's sigma(L) = c (L/pc)^a
  in expectation (its box mean is removed, so v_sys is the core's systemic velocity);
- observation: every voxel emits an optically thin Gaussian line of integral kappa n dz (K km/s)
  at its velocity, width sqrt(sigma_th^2 + sigma_nt^2) (thermal, and Larson's relation at the
  voxel size for unresolved turbulence); the spectra are summed along z, convolved with a
  Gaussian beam in each channel, and given Gaussian noise.

Targets per column: the density and the density-weighted velocity averaged in ``n_bins`` bins
along z, and the H2 column density.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from astroflow.cubes.config import LOG_SAMPLED, CoreConfig
from astroflow.cubes.fields import (
    CroppedGaussianField,
    add_standard_normals,
    crop_mean_response,
    full_grid_weights,
    power_law_variance,
)
from astroflow.cubes.kernels import core_fields
from astroflow.cubes.line import optically_thin_spectra
from astroflow.cubes.params import PARAM_NAMES

_RANGE_OF_PARAM = {
    "central_density": "central_density_cm3",
    "flat_radius": "flat_radius_pc",
    "eta": "eta",
    "log_density_sigma": "log_density_sigma",
    "systemic_velocity": "systemic_velocity_kms",
    "infall_speed": "infall_speed_kms",
    "rotation_rate": "rotation_kms_per_pc",
}

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Core:
    """One synthetic core: parameters, 3D fields and the mock cube.

    ``params`` (13,) float64 in :data:`PARAM_NAMES` order; ``density`` (n, n, n) float32 H2
    number density in cm^-3 and ``velocity`` (n, n, n) float32 line-of-sight velocity in km/s,
    both (z, y, x); ``cube`` (nv, n, n) float32 brightness temperature in K, (v, y, x).
    """

    params: np.ndarray
    density: np.ndarray
    velocity: np.ndarray
    cube: np.ndarray


class CoreSynthesizer:
    """Synthesises cores for one :class:`CoreConfig`; everything per-config is computed once.

    The two turbulent fields' Fourier amplitudes, the voxel coordinates and the line constants
    are prepared in the constructor, so :meth:`synthesize` costs two inverse FFTs of the padded
    box, their random modes, and the spectra.
    """

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        n, padded = config.grid_size, config.padded_size
        self.coords_pc = (np.arange(n) + 0.5) * config.voxel_pc - config.box_size_pc / 2
        self.channels = config.channels_kms
        self.log_density_field = CroppedGaussianField(
            n, padded, power_law_variance(padded, config.log_density_slope)
        )
        # Larson's relation fixes the dispersion about the box mean, not the point variance:
        # normalise with the variance the crop's mean does not absorb.
        velocity_shape = power_law_variance(padded, 3.0 + 2.0 * config.larson_exponent)
        inside = np.sum(
            velocity_shape * full_grid_weights(padded) * (1.0 - crop_mean_response(padded, n))
        )
        self.velocity_field = CroppedGaussianField(
            n, padded, velocity_shape * (config.box_sigma_kms**2 / inside)
        )
        self.voxel_intensity = config.kappa * config.voxel_cm  # K km/s per (cm^-3 of H2)
        self.line_sigma = config.line_sigma_kms
        self.beam_sigma_pixels = config.beam_fwhm_pc / FWHM_PER_SIGMA / config.voxel_pc

    def sample_params(self, rng: np.random.Generator) -> np.ndarray:
        """Draw one core's parameters (13,) float64 in :data:`PARAM_NAMES` order."""
        cfg = self.config
        values = {}
        for name, key in _RANGE_OF_PARAM.items():
            low, high = getattr(cfg, key)
            if key in LOG_SAMPLED:
                values[name] = math.exp(rng.uniform(math.log(low), math.log(high)))
            else:
                values[name] = rng.uniform(low, high)
        offset = rng.uniform(-cfg.center_offset_pc, cfg.center_offset_pc, size=3)
        values["center_x"], values["center_y"], values["center_z"] = offset
        axis = rng.standard_normal(3)  # isotropic direction: a normalised Gaussian vector
        values["axis_x"], values["axis_y"], values["axis_z"] = axis / np.linalg.norm(axis)
        return np.array([values[name] for name in PARAM_NAMES], dtype=np.float64)

    def synthesize(self, rng: np.random.Generator) -> Core:
        """One core from ``rng``: parameters, density and velocity fields, mock cube.

        The two turbulent fields (one 64-bit key each, see :mod:`astroflow.cubes.fields`), the
        parameters and the noise draw from ``rng`` in this order, the noise last, so switching
        the noise or the beam off leaves the core itself unchanged.
        """
        log_density = self.log_density_field.draw(rng)
        turbulence = self.velocity_field.draw(rng)
        params = self.sample_params(rng)
        density, velocity = self.fields(params, log_density, turbulence)
        return Core(params, density, velocity, self.observe(density, velocity, rng))

    def fields(
        self, params: np.ndarray, log_density: np.ndarray, turbulence: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Density (cm^-3) and line-of-sight velocity (km/s), (z, y, x) float32.

        ``log_density`` is a unit-variance Gaussian field, scaled here by the core's
        sigma_s; ``turbulence`` is the turbulent velocity (km/s) before its box mean is
        removed.
        """
        p = dict(zip(PARAM_NAMES, params, strict=True))
        flat, sigma_s, omega = p["flat_radius"], p["log_density_sigma"], p["rotation_rate"]
        log_density = np.ascontiguousarray(log_density, dtype=np.float32)
        turbulence = np.ascontiguousarray(turbulence, dtype=np.float32)
        density = np.empty_like(log_density)
        velocity = np.empty_like(log_density)
        # n_c (1 + q)^(-eta/2) exp(sigma_s g - sigma_s^2/2); infall v_r = -v_in 2 (r/R) / (1 + q)
        # has the z component v_r z / r; rotation (Omega a x r)_z = Omega (a_x y - a_y x).
        core_fields(
            self._offsets(p),
            np.float32(1.0 / flat**2),
            np.float32(p["eta"] / 2),
            np.float32(sigma_s),
            np.float32(math.log(p["central_density"]) - sigma_s**2 / 2),
            np.float32(-2.0 * p["infall_speed"] / flat),
            (np.float32(omega * p["axis_x"]), np.float32(omega * p["axis_y"])),
            log_density,
            turbulence,
            np.float32(p["systemic_velocity"] - turbulence.mean(dtype=np.float64)),
            density,
            velocity,
        )
        return density, velocity

    def smooth_density(self, params: np.ndarray) -> np.ndarray:
        """The Plummer-like component n_c / (1 + (r / R_flat)^2)^(eta / 2), (z, y, x) cm^-3."""
        p = dict(zip(PARAM_NAMES, params, strict=True))
        q = self._radius2(*self._offsets(p)) / np.float32(p["flat_radius"] ** 2)
        return (p["central_density"] * (1.0 + q) ** (-p["eta"] / 2)).astype(np.float32)

    def observe(
        self, density: np.ndarray, velocity: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Mock cube (nv, n, n) in K of the given fields: spectra, beam, noise."""
        intensity = density * np.float32(self.voxel_intensity)
        cube = optically_thin_spectra(intensity, velocity, self.channels, self.line_sigma)
        if self.beam_sigma_pixels > 0:
            cube = convolve_beam(cube, self.beam_sigma_pixels)
        if self.config.noise_rms_k > 0:
            add_standard_normals(rng, cube, self.config.noise_rms_k)
        return cube

    def _offsets(self, p: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel-centre offsets from the core centre along z, y, x (pc), float32 vectors."""
        c = self.coords_pc
        return tuple((c - p[f"center_{axis}"]).astype(np.float32) for axis in ("z", "y", "x"))

    @staticmethod
    def _radius2(dz: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
        return (dz**2)[:, None, None] + (dy**2)[None, :, None] + (dx**2)[None, None, :]


def convolve_beam(cube: np.ndarray, sigma_pixels: float) -> np.ndarray:
    """Each channel map of ``cube`` (..., ny, nx) convolved with a Gaussian beam (float32).

    ``sigma_pixels`` is the beam's standard deviation in pixels; the kernel is sampled at
    whole pixels out to 4 sigma and normalised to unit sum. Outside the map there is no gas
    (the box is the whole core), so the beam sees zeros there: edge pixels lose the part of
    their beam that falls off the map, as they would on the sky. The separable convolution is
    two products with banded matrices, which BLAS does faster than a filter loop on maps this
    small.
    """
    if sigma_pixels <= 0:
        return np.array(cube, dtype=np.float32)  # no beam: the maps as they are
    ny, nx = cube.shape[-2:]
    rows = _beam_matrix(ny, sigma_pixels)
    columns = _beam_matrix(nx, sigma_pixels)
    return np.matmul(rows, np.matmul(np.asarray(cube, dtype=np.float32), columns))


@functools.lru_cache(maxsize=8)
def _beam_matrix(n: int, sigma_pixels: float) -> np.ndarray:
    """(n, n) float32 matrix of the 1D beam: entry (i, j) is the kernel at offset i - j, zero
    beyond 4 sigma and off the map (symmetric, so it acts on rows and columns alike)."""
    radius = int(4.0 * sigma_pixels + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma_pixels) ** 2)
    kernel /= kernel.sum()
    lag = np.subtract.outer(np.arange(n), np.arange(n))
    matrix = np.where(np.abs(lag) <= radius, kernel[np.clip(lag + radius, 0, 2 * radius)], 0.0)
    matrix = matrix.astype(np.float32)
    matrix.flags.writeable = False  # shared by the cache
    return matrix


def los_profiles(
    density: np.ndarray, velocity: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray]:
    """Target profiles (n_bins, ny, nx): bin-mean density and density-weighted velocity.

    The n voxels of each column are grouped in ``n_bins`` consecutive bins along z (axis 0).
    The velocity of a bin is weighted by density, the gas an observer's spectrum sees, so a
    bin of near-vacuum does not carry a velocity no observation could constrain.
    """
    nz = density.shape[0]
    if nz % n_bins:
        raise ValueError(f"{nz} voxels along the line of sight do not split into {n_bins} bins")
    shape = (n_bins, nz // n_bins, *density.shape[1:])
    # float32 sums: a bin holds at most a column (tens of voxels), which float32 adds to ~1e-6.
    density = np.asarray(density, dtype=np.float32)
    velocity = np.asarray(velocity, dtype=np.float32)
    mass = density.reshape(shape).sum(axis=1)
    momentum = (density * velocity).reshape(shape).sum(axis=1)
    momentum /= mass
    mass /= np.float32(shape[1])
    return mass, momentum


def column_density(density: np.ndarray, voxel_cm: float) -> np.ndarray:
    """H2 column density (ny, nx) in cm^-2: density (z, y, x) in cm^-3 summed along z."""
    return (density.sum(axis=0, dtype=np.float64) * voxel_cm).astype(np.float32)
