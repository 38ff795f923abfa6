"""Power spectra of periodic 2D fields: the estimator, the input model, and Gaussian random fields.

Conventions (shared by the three functions so that a test can close the loop): a field is an
(N, N) array on a periodic square of side ``box_size`` (Mpc/h); wavenumbers are
``k = 2 pi f / L`` in h/Mpc; the Fourier convention is ``delta_k = FFT(x) (L/N)^2`` and the power
``P(k) = <|delta_k|^2> / L^2`` in (Mpc/h)^2, so that the field variance is ``sum_k P(k) / L^2``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import fft
from scipy.special import j1

HUBBLE_H = 0.6711
"""Dimensionless Hubble constant of the CAMELS simulations; enters the shape parameter."""

SPECTRAL_INDEX = 0.9624
"""Primordial tilt n_s of the CAMELS cosmology."""

TURNOVER_STRETCH = 90.0
"""Factor that moves the BBKS turnover from k ~ 0.02 h/Mpc to k ~ 1.75 h/Mpc at Omega_m = 0.3.

A (25 Mpc/h)^2 map only samples 0.25 < k < 8 h/Mpc, far above the linear turnover, where the real
Omega_m dependence comes from non-linear growth. Stretching the shape keeps the physics simple
(one transfer function, Gamma = Omega_m h) while putting the Omega_m-dependent turnover inside
the sampled range: at Omega_m = 0.1 ... 0.5 the peak of P(k) sits at 0.58 ... 2.9 h/Mpc.
"""

TRACER_BIAS = 1.25
"""rms of the field in the normalisation top hat, in units of sigma_8.

Chosen so that the log gas density has an rms of ~1 (0.4 dex) at sigma_8 = 0.8, as in CMD maps.
"""

NORMALISATION_RADIUS = 8.0 / TURNOVER_STRETCH
"""Top-hat radius (Mpc/h) at which sigma_8 fixes the amplitude.

The 8 Mpc/h of the sigma_8 definition shrunk by the same stretch as the turnover, so the
normalisation scale keeps its place relative to the spectral shape.
"""

_K_INTEGRATION = np.logspace(-4, 3, 1400)


def power_spectrum_2d(
    field: np.ndarray, box_size: float, n_bins: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned power spectrum of periodic square field(s) of side ``box_size`` (Mpc/h).

    ``field`` has shape (..., N, N); leading axes are independent maps. The mean of each map is
    removed, modes are binned in |k| with ``n_bins`` linear bins from k_f/2 to k_Nyquist + k_f/2
    (default N // 2 bins, one fundamental mode k_f = 2 pi / L wide, so every annulus is complete
    and non-empty). Returns ``k_mean`` (n_bins,), the mode-averaged |k| of each bin (not its
    centre), ``power`` (..., n_bins) in (Mpc/h)^2, and ``n_modes`` (n_bins,) counting both k and
    -k as the full FFT plane does.
    """
    field = np.asarray(field, dtype=np.float64)
    if field.ndim < 2 or field.shape[-1] != field.shape[-2] or field.shape[-1] < 4:
        raise ValueError(f"field must have shape (..., N, N) with N >= 4, got {field.shape}")
    if not box_size > 0:
        raise ValueError(f"box_size must be positive, got {box_size}")
    n = field.shape[-1]
    if n_bins is None:
        n_bins = n // 2
    if not 1 <= n_bins <= n // 2:
        raise ValueError(f"n_bins must be in [1, {n // 2}] for N = {n}, got {n_bins}")

    k_units = k_modulus_units(n)
    weight = half_plane_weights(n)
    edges = 0.5 + (n / 2) * np.arange(n_bins + 1) / n_bins
    bin_index = np.digitize(k_units, edges) - 1
    keep = (bin_index >= 0) & (bin_index < n_bins)
    order = np.argsort(bin_index[keep], kind="stable")
    bins_sorted = bin_index[keep][order]
    w_sorted = weight[keep][order]
    starts = np.searchsorted(bins_sorted, np.arange(n_bins))

    n_modes = np.add.reduceat(w_sorted, starts)
    k_f = 2.0 * np.pi / box_size
    k_mean = np.add.reduceat(w_sorted * k_units[keep][order], starts) * k_f / n_modes

    fourier = fft.rfft2(field - field.mean(axis=(-2, -1), keepdims=True))
    mode_power = np.abs(fourier) ** 2 * (box_size**2 / n**4)
    flat = mode_power.reshape(*field.shape[:-2], -1)[..., keep.ravel()][..., order]
    power = np.add.reduceat(flat * w_sorted, starts, axis=-1) / n_modes
    return k_mean, power, n_modes.astype(np.int64)


def input_power_spectrum(k: np.ndarray, omega_m: float, sigma_8: float) -> np.ndarray:
    """Projected 2D spectrum P(k) in (Mpc/h)^2 of the Gaussian field behind the synthetic maps.

    P(k) = A k^n_s T^2(q), q = k / (Gamma * TURNOVER_STRETCH), Gamma = Omega_m h, with the BBKS
    (Bardeen et al. 1986) CDM transfer function T. For a slab thicker than the transverse scale
    the projected spectrum is the 3D one times the slab depth, so the 3D shape carries over. A is
    set, as sigma_8 is defined, by the variance in a (2D) top hat, of radius
    NORMALISATION_RADIUS: (TRACER_BIAS * sigma_8)^2. Hence the amplitude scales exactly as
    sigma_8^2, while Omega_m moves the turnover (k_peak proportional to Omega_m) and tilts the
    spectrum around the normalisation scale. ``k`` has any shape (h/Mpc); P(0) = 0.
    """
    if not omega_m > 0 or not sigma_8 > 0:
        raise ValueError(f"omega_m and sigma_8 must be positive, got {omega_m}, {sigma_8}")
    shape = _spectral_shape(np.asarray(k, dtype=np.float64), omega_m)
    return (TRACER_BIAS * sigma_8) ** 2 * shape / _top_hat_variance(omega_m)


def gaussian_random_field(
    n: int,
    box_size: float,
    power: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    size: int | None = None,
) -> np.ndarray:
    """Periodic zero-mean Gaussian random field(s) whose expected measured spectrum is ``power``.

    White noise is coloured in Fourier space by sqrt(P(k)) N / L, so every mode k != 0 has
    <|delta_k|^2> / L^2 = P(|k|) exactly (no binning or pixel-window bias) and the result is real
    and periodic by construction. ``power`` maps |k| (h/Mpc) to P (Mpc/h)^2. Returns (n, n)
    float64, or (size, n, n) when ``size`` is given: one batched FFT for all realisations.
    """
    if n < 4:
        raise ValueError(f"n must be >= 4, got {n}")
    if not box_size > 0:
        raise ValueError(f"box_size must be positive, got {box_size}")
    amplitude = np.sqrt(_power_on_grid(n, box_size, power)) * (n / box_size)
    amplitude[0, 0] = 0.0
    # float32 noise halves the cost of the random draws; the colouring runs in float64.
    white = rng.standard_normal((1 if size is None else size, n, n), dtype=np.float32)
    field = fft.irfft2(fft.rfft2(white) * amplitude, s=(n, n))
    return field[0] if size is None else field


def grid_variance(n: int, box_size: float, power: Callable[[np.ndarray], np.ndarray]) -> float:
    """Expected variance of :func:`gaussian_random_field` on an (n, n) grid: sum_k P(k) / L^2.

    Used to make log-normal fields with a prescribed mean: exp(g - var / 2) has mean 1.
    """
    p = _power_on_grid(n, box_size, power)
    p[0, 0] = 0.0
    return float(np.sum(half_plane_weights(n) * p) / box_size**2)


def rfft_wavenumbers(n: int, box_size: float) -> np.ndarray:
    """|k| (h/Mpc) of the rfft2 modes of an (n, n) map of side ``box_size``; shape (n, n//2 + 1)."""
    return k_modulus_units(n) * (2.0 * np.pi / box_size)


def _power_on_grid(
    n: int, box_size: float, power: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    k = rfft_wavenumbers(n, box_size)
    p = np.array(power(k), dtype=np.float64)
    if p.shape != k.shape or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("power(k) must return finite, non-negative values of the shape of k")
    return p


def half_plane_weights(n: int) -> np.ndarray:
    """Weight of each rfft2 mode in full-plane sums: 2 for columns that also stand for -k."""
    weight = np.ones((n, n // 2 + 1))
    weight[:, 1 : (n + 1) // 2] = 2.0
    return weight


def k_modulus_units(n: int) -> np.ndarray:
    """|k| / k_f on the rfft2 grid of an (n, n) map, shape (n, n // 2 + 1)."""
    ky = np.fft.fftfreq(n, d=1.0 / n)
    kx = np.fft.rfftfreq(n, d=1.0 / n)
    return np.hypot(ky[:, None], kx[None, :])


def _spectral_shape(k: np.ndarray, omega_m: float) -> np.ndarray:
    """Unnormalised k^n_s T_BBKS^2(q); 0 at k = 0."""
    q = k / (omega_m * HUBBLE_H * TURNOVER_STRETCH)
    safe = np.where(q > 0, q, 1.0)
    transfer = (
        np.log1p(2.34 * safe)
        / (2.34 * safe)
        * (1 + 3.89 * safe + (16.1 * safe) ** 2 + (5.46 * safe) ** 3 + (6.71 * safe) ** 4) ** -0.25
    )
    return np.where(k > 0, np.abs(k) ** SPECTRAL_INDEX * transfer**2, 0.0)


def _top_hat_variance(omega_m: float) -> float:
    """Variance of the unnormalised shape in a 2D top hat of radius NORMALISATION_RADIUS.

    sigma^2(R) = int d^2k / (2 pi)^2 P(k) W^2(kR) with W(x) = 2 J1(x) / x, integrated in ln k
    over the continuum (not the map's modes), so the amplitude does not depend on the grid.
    """
    k = _K_INTEGRATION
    x = k * NORMALISATION_RADIUS
    window = 2.0 * j1(x) / x
    integrand = k**2 * _spectral_shape(k, omega_m) * window**2 / (2.0 * np.pi)
    return float(np.trapezoid(integrand, np.log(k)))
