"""Synthetic pairs of periodic volumes: the same realization on a fine and on a coarse grid.

One Gaussian field ``g`` (the linear density contrast) with power P(k) ∝ k^n up to the fine
grid's Nyquist sphere gives four physically tied channels:

- ``density`` (in units of the mean): the log-normal exp(g - σ²/2), so the small scales are
  not Gaussian and their amplitude is modulated by the large scales;
- ``vx, vy, vz`` (km/s): the linear-theory velocity v_k = i k δ_k / k² (so ∇·v = -δ, flows
  converge on over-densities), scaled to a chosen rms.

The low-resolution counterpart is what a simulation of the same initial modes on a grid
``factor`` times coarser would hold: the same g with every mode at or beyond the coarse
Nyquist frequency removed (|k_i| ≥ k_Ny,LR along any axis), sampled at the coarse cell
centres, then put through the same transforms. The coarse density is therefore not a block
average of the fine one: the log-normal of fewer modes has less variance.

Axes are (z, y, x); both grids are cell-centred, coarse cell i covering fine cells
f i ... f i + f - 1, so any permutation or flip of the axes maps a crop of the pair onto a
valid pair.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

from astroflow.volumes.settings import VolumeConfig

CHANNELS: tuple[str, ...] = ("density", "vx", "vy", "vz")
UNITS: tuple[str, ...] = ("mean density", "km/s", "km/s", "km/s")
VECTOR_CHANNELS: tuple[int, int, int] = (3, 2, 1)
"""Channel of the velocity component along each array axis (z, y, x): vz, vy, vx."""


def wavenumbers(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer wavenumbers (kz, ky, kx) of the rfftn grid of an n³ volume, broadcastable."""
    k = np.fft.fftfreq(n, d=1.0 / n)
    kx = np.fft.rfftfreq(n, d=1.0 / n)
    return k[:, None, None], k[None, :, None], kx[None, None, :]


def _mode_variance(config: VolumeConfig) -> np.ndarray:
    """Per-rfftn-mode variance of g, normalised to the fine grid's expected variance 1.

    Modes on or beyond the Nyquist sphere are empty so the smallest structures are isotropic.
    """
    n = config.grid_size
    kz, ky, kx = wavenumbers(n)
    k = np.sqrt(kz**2 + ky**2 + kx**2)
    variance = np.zeros_like(k)
    kept = (k > 0) & (k < n / 2)
    variance[kept] = k[kept] ** config.spectral_index
    return variance / np.sum(variance * _full_grid_weights(n))


def _full_grid_weights(n: int) -> np.ndarray:
    """Full-grid modes each rfftn mode stands for (1 on the kx = 0 and Nyquist planes)."""
    weights = np.full((1, 1, n // 2 + 1), 2.0)
    weights[..., 0] = 1.0
    weights[..., -1] = 1.0
    return weights


def _coarse_mask(config: VolumeConfig) -> np.ndarray:
    """Modes the coarse grid holds: |k_i| < its Nyquist frequency on every axis."""
    kz, ky, kx = wavenumbers(config.grid_size)
    half = config.coarse_size / 2
    return (np.abs(kz) < half) & (np.abs(ky) < half) & (np.abs(kx) < half)


def synthesize_pair(config: VolumeConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One realization as (low, high): float32 arrays (4, m, m, m) and (4, n, n, n), m = n / f.

    Channels are :data:`CHANNELS` in :data:`UNITS`; velocity channels hold (vx, vy, vz) with x
    the last array axis.
    """
    n, m, f = config.grid_size, config.coarse_size, config.factor
    rng = np.random.default_rng(seed)
    variance = _mode_variance(config)
    white = fft.rfftn(rng.standard_normal((n, n, n)))
    # A unit white-noise mode has <|w_k|^2> = n^3, so dividing by n^1.5 gives unit variance.
    g_k = white * np.sqrt(variance) * config.log_density_sigma / n**1.5 * n**3
    # Cell centres of the coarse grid sit (f - 1) / 2 fine voxels from the fine cell centres.
    kz, ky, kx = wavenumbers(n)
    shift = np.exp(2j * np.pi * (kz + ky + kx) * (f - 1) / 2 / n)
    mask = _coarse_mask(config)
    coarse_variance = float(np.sum(variance * mask * _full_grid_weights(n)))
    high = _channels(g_k, config, 1.0, slice(None))
    low = _channels(g_k * mask * shift, config, coarse_variance, slice(None, None, f))
    assert low.shape[-1] == m
    return low, high


def _channels(
    g_k: np.ndarray, config: VolumeConfig, variance_fraction: float, sample: slice
) -> np.ndarray:
    """Density and velocity of the modes ``g_k`` on the fine grid, sampled with ``sample``.

    ``variance_fraction`` is the share of the full variance these modes hold in expectation:
    the log-normal subtracts the expected variance of the field it exponentiates.
    """
    n = config.grid_size
    sigma = config.log_density_sigma
    g = fft.irfftn(g_k, s=(n, n, n))[sample, sample, sample]
    density = np.exp(g - sigma**2 * variance_fraction / 2)
    kz, ky, kx = wavenumbers(n)
    k2 = kz**2 + ky**2 + kx**2
    k2[0, 0, 0] = 1.0
    velocities = [
        fft.irfftn(1j * k * g_k / k2, s=(n, n, n))[sample, sample, sample] for k in (kx, ky, kz)
    ]
    scale = config.velocity_rms_kms / _velocity_rms(config)
    return np.stack([density, *(scale * v for v in velocities)]).astype(np.float32)


def _velocity_rms(config: VolumeConfig) -> float:
    """Expected rms of one velocity component of the unscaled i k δ / k² on the fine grid."""
    n = config.grid_size
    kz, ky, kx = wavenumbers(n)
    k2 = (kz**2 + ky**2 + kx**2).astype(np.float64)
    k2[0, 0, 0] = np.inf
    sigma2 = config.log_density_sigma**2
    per_mode = _mode_variance(config) * sigma2 / k2 / 3.0  # isotropy: a third per component
    return float(np.sqrt(np.sum(per_mode * _full_grid_weights(n))))
