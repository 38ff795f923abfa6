"""Spectral resampling of periodic volumes: the band-limited upsampling of a coarse grid and
the projection of a fine field onto the modes a coarse grid resolves.

Grids are cell-centred, axes (z, y, x), volumes (C, M, M, M); coarse cell i covers fine cells
f i ... f i + f - 1. The modes a coarse grid of M voxels resolves are those with |k_i| < M / 2
on every axis (its Nyquist planes hold cosines only and are left out).
"""

from __future__ import annotations

import numpy as np
from scipy import fft


def _resolved_modes(lr: np.ndarray, factor: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The rfftn modes of a (C, M, M, M) volume that its grid resolves, |k_i| < M / 2 on every
    axis (the Nyquist planes, which hold cosines only, are left out), as (index into the
    rfftn array of the f M grid, their coefficients there).

    Coarse cell i covers fine cells f i ... f i + f - 1, so its centre lies (f - 1) / 2 fine
    voxels from the fine grid's: the coefficients carry that phase shift, and the factor f³
    of the two transforms' normalisations."""
    m = lr.shape[-1]
    n = factor * m
    k = np.fft.fftfreq(m, 1.0 / m)
    keep = np.flatnonzero(np.abs(k) < m / 2)
    keep_x = keep[keep < m // 2 + 1]  # the rfft half axis: 0 ... M/2 - 1
    coefficients = fft.rfftn(np.asarray(lr, np.float32), axes=(-3, -2, -1))
    coefficients = coefficients[:, keep[:, None, None], keep[None, :, None], keep_x[None, None, :]]
    phase = [np.exp(-1j * np.pi * k[i] * (factor - 1) / n) for i in (keep, keep, keep_x)]
    shift = phase[0][:, None, None] * phase[1][None, :, None] * phase[2][None, None, :]
    fine = k.astype(np.int64) % n
    index = (
        np.arange(lr.shape[0])[:, None, None, None],
        fine[keep][None, :, None, None],
        fine[keep][None, None, :, None],
        fine[keep_x][None, None, None, :],
    )
    return index, (coefficients * shift * factor**3).astype(np.complex64)


def spectral_upsample(lr: np.ndarray, factor: int) -> np.ndarray:
    """Spectral (FFT, band-limited) upsampling of a periodic cell-centred volume (C, M, M, M)
    to (C, f M, f M, f M): the fine field that holds exactly the modes the coarse grid resolves
    and no others. On fields whose coarse version is the fine one with the modes beyond the
    coarse Nyquist frequency removed (the synthetic pairs, in scaled units: log density and
    velocity), it reproduces the truth's resolved modes exactly."""
    n = factor * lr.shape[-1]
    index, values = _resolved_modes(lr, factor)
    modes = np.zeros((lr.shape[0], n, n, n // 2 + 1), np.complex64)
    modes[index] = values
    return fft.irfftn(modes, s=(n, n, n), axes=(-3, -2, -1)).astype(np.float32)


def project_resolved(
    out: np.ndarray, lr: np.ndarray, factor: int, k_max: float | None = None
) -> np.ndarray:
    """``out`` (C, f M, f M, f M) with the modes that ``lr`` (C, M, M, M) resolves replaced by
    those of its :func:`spectral_upsample`, except the mean; with ``k_max``, only those with
    |k| < k_max (in fundamentals: M / 2 is the sphere inside the coarse Nyquist frequency,
    resolved along every direction, without the cube's corners).

    The mean (k = 0) stays ``out``'s: in log density the coarse grid's mean differs from the
    fine one's by half the variance of the modes it lacks (a log-normal field keeps its mean
    density, not its mean logarithm), which a generator learns and a projection must keep."""
    n = out.shape[-1]
    index, values = _resolved_modes(lr, factor)
    upsampled = np.zeros((lr.shape[0], n, n, n // 2 + 1), np.complex64)
    upsampled[index] = values
    replace = np.zeros((n, n, n // 2 + 1), bool)
    replace[index[1:]] = True
    if k_max is not None:
        k = np.fft.fftfreq(n, 1.0 / n)
        kx = np.fft.rfftfreq(n, 1.0 / n)
        replace &= k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2 < k_max**2
    replace[0, 0, 0] = False
    modes = fft.rfftn(np.asarray(out, np.float32), axes=(-3, -2, -1))
    modes[:, replace] = upsampled[:, replace]
    return fft.irfftn(modes, s=(n, n, n), axes=(-3, -2, -1)).astype(np.float32)
