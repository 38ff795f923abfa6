"""The two-point baseline of an emulator: Gaussian log fields with given auto and cross spectra.

A set of standardized log10 maps whose fields are jointly Gaussian has, by construction, the
requested P(k) of every field and r(k) of every pair, and log-normal physical maps; everything
beyond two points (the skewed PDF of HI, the filaments of gas) is missing. A generative model
that does not beat it on the PDF and the cross-correlations has learned nothing a power
spectrum does not hold.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

from astroflow.evaluation.fields import field_pairs
from astroflow.maps.power_spectrum import rfft_wavenumbers


def spectral_matrix(auto: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Cross-spectral matrices (K, F, F) from auto spectra (F, K) and r(k) of the field
    pairs (pairs, K) in :func:`~astroflow.evaluation.fields.field_pairs` order."""
    n_fields, n_k = auto.shape
    matrix = np.zeros((n_k, n_fields, n_fields))
    for f in range(n_fields):
        matrix[:, f, f] = auto[f]
    for j, (a, b) in enumerate(field_pairs(n_fields)):
        matrix[:, a, b] = matrix[:, b, a] = r[j] * np.sqrt(auto[a] * auto[b])
    return matrix


def gaussian_fields(
    k: np.ndarray,
    auto: np.ndarray,
    r: np.ndarray,
    means: np.ndarray,
    n_maps: int,
    map_size: int,
    box_size: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``n_maps`` periodic Gaussian multifield maps (n, F, N, N) with the binned auto spectra
    ``auto`` (F, K) and cross-correlations ``r`` (pairs, K) at the bin wavenumbers ``k`` (K,),
    and pixel means ``means`` (F,).

    The spectra are interpolated linearly in |k| onto the Fourier grid (held constant beyond
    the first and last bin). Each mode gets the symmetric square root of its cross-spectral
    matrix, eigenvalues clipped at zero where the measured matrix is not quite positive, and
    colours white noise with it as :func:`~astroflow.maps.power_spectrum.gaussian_random_field`
    does one field.
    """
    auto, r = np.asarray(auto, dtype=np.float64), np.asarray(r, dtype=np.float64)
    n_fields = auto.shape[0]
    k_grid = rfft_wavenumbers(map_size, box_size)
    grid_auto = np.array([np.interp(k_grid.ravel(), k, p) for p in auto])
    grid_r = np.array([np.interp(k_grid.ravel(), k, c) for c in r]).reshape(-1, k_grid.size)
    matrix = spectral_matrix(np.clip(grid_auto, 0.0, None), np.clip(grid_r, -1.0, 1.0))
    values, vectors = np.linalg.eigh(matrix)
    root = (vectors * np.sqrt(np.clip(values, 0.0, None))[:, None, :]) @ vectors.transpose(0, 2, 1)
    root[0] = 0.0  # the k = 0 mode: the mean is set below
    root = root.reshape(*k_grid.shape, n_fields, n_fields) * (map_size / box_size)
    white = rng.standard_normal((n_maps, n_fields, map_size, map_size))
    modes = fft.rfft2(white)
    coloured = np.einsum("yxab,nbyx->nayx", root, modes)
    maps = fft.irfft2(coloured, s=(map_size, map_size))
    return maps + np.asarray(means, dtype=np.float64)[None, :, None, None]
