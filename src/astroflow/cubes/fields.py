"""Non-periodic 3D Gaussian random fields: coloured in a padded periodic box, then cropped.

A field made by FFT on the core's own grid would be periodic, so its two faces would match, and
a power-law spectrum puts most of the variance in the largest modes, exactly the ones
periodicity distorts. The fields are therefore drawn in a box ``padded`` voxels on a side
(larger than the core's ``n``) and the first n^3 voxels kept.

Conventions: modes live on the rfftn grid of the padded box, shape (m, m, m // 2 + 1), with
integer wavenumbers in units of the padded fundamental 2 pi / (m dx). ``mode_variance`` gives
each full-grid mode's share of the point variance of the field: the field's variance is the
sum of ``mode_variance`` over the full (not half) Fourier grid.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft


def wavenumber_grid(padded: int) -> np.ndarray:
    """|k| of the rfftn modes of a (padded,)*3 grid in units of the fundamental, float64."""
    k = np.fft.fftfreq(padded, d=1.0 / padded)
    kz = np.fft.rfftfreq(padded, d=1.0 / padded)
    return np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + kz[None, None, :] ** 2)


def full_grid_weights(padded: int) -> np.ndarray:
    """Number of full-grid modes each rfftn mode stands for: 1 on the kz = 0 and Nyquist
    planes (they hold their own conjugates), 2 elsewhere; shape (1, 1, padded // 2 + 1)."""
    weights = np.full((1, 1, padded // 2 + 1), 2.0)
    weights[..., 0] = 1.0
    if padded % 2 == 0:
        weights[..., -1] = 1.0
    return weights


def power_law_variance(padded: int, slope: float) -> np.ndarray:
    """Mode variances proportional to |k|^-slope (P(k) of the 3D field), unit total variance.

    The k = 0 mode (the mean) carries nothing: a fluctuation field has zero expected mean.
    Modes beyond the Nyquist sphere |k| > padded / 2 carry nothing either: the grid resolves
    them only along its diagonals, so keeping them would make the smallest structures
    anisotropic (and drawing them is half the random numbers of the field).
    """
    k = wavenumber_grid(padded)
    variance = np.zeros_like(k)
    kept = (k > 0) & (k <= padded / 2)
    variance[kept] = k[kept] ** -slope
    return variance / np.sum(variance * full_grid_weights(padded))


def crop_mean_response(padded: int, n: int) -> np.ndarray:
    """|D(k)|^2: the fraction of a mode's variance that shows as the mean of an n^3 crop.

    D is the average of exp(i k x) over n consecutive voxels along each axis (a Dirichlet
    kernel per axis). The expected variance of a field about its crop mean is then
    ``sum(mode_variance * (1 - |D|^2))`` over the full grid, which is how a dispersion measured
    inside a region of size n voxels (Larson's relation) is set.
    """
    k = np.fft.fftfreq(padded, d=1.0 / padded)
    kz = np.fft.rfftfreq(padded, d=1.0 / padded)

    def dirichlet2(m: np.ndarray) -> np.ndarray:
        phase = np.pi * m / padded
        safe = np.where(m == 0, 1.0, np.sin(phase))
        return np.where(m == 0, 1.0, (np.sin(n * phase) / (n * safe)) ** 2)

    return dirichlet2(k)[:, None, None] * dirichlet2(k)[None, :, None] * dirichlet2(kz)


def complex_normals(rng: np.random.Generator, scale: np.ndarray | float, size: int) -> np.ndarray:
    """``size`` complex normals times ``scale`` (a scalar or (size,) float32): unit variance in
    the real and in the imaginary part before scaling; complex64.

    numpy's ziggurat draws one normal at a time (~9 ns each here); the Box-Muller transform
    gives the same distribution in a few whole-array passes, about three times faster. One
    64-bit draw per value: 32 bits set the modulus sqrt(-2 ln u) with u = (b + 1/2) 2^-32 in
    (0, 1), so the modulus reaches 6.8 (a tail cut at probability 1e-10 per value), and 32 bits
    set the phase.
    """
    words = rng.bit_generator.random_raw(size).view(np.uint32)
    modulus = words[:size].astype(np.float32)
    modulus += np.float32(0.5)
    np.log(modulus, out=modulus)
    modulus *= np.float32(-2.0)
    modulus += np.float32(64.0 * math.log(2.0))  # -2 ln(b + 1/2) + 2 ln 2^32 = -2 ln u
    np.sqrt(modulus, out=modulus)
    modulus *= scale
    phase = words[size:].astype(np.float32)
    phase *= np.float32(2.0 * math.pi / 2.0**32)
    out = np.empty(size, dtype=np.complex64)
    out.real = np.multiply(np.cos(phase), modulus)
    out.imag = np.multiply(np.sin(phase, out=phase), modulus, out=phase)
    return out


def standard_normals(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Independent standard normals of the given shape, float32: the real and imaginary parts
    of :func:`complex_normals`, which are independent by construction."""
    size = math.prod(shape)
    pairs = complex_normals(rng, 1.0, (size + 1) // 2)
    return pairs.view(np.float32)[:size].reshape(shape)


class CroppedGaussianField:
    """Draws zero-mean Gaussian fields (n, n, n) float32 with the given mode variances.

    The complex white noise is drawn directly on the rfftn grid, so one inverse FFT per field
    suffices. On the kz = 0 and Nyquist planes the inverse real FFT keeps only the Hermitian
    part (X(k) + X*(-k)) / 2 of the noise, which halves its variance; those planes are
    amplified by sqrt(2) to compensate, so every mode has exactly the requested variance.
    The amplitudes are computed once; :meth:`draw` is the per-core cost: one complex normal
    per mode of non-zero variance (only those are drawn) and one single-precision inverse FFT
    of the padded box. The mode buffer is reused between draws, so one instance must not be
    shared between threads.
    """

    def __init__(self, n: int, padded: int, mode_variance: np.ndarray) -> None:
        if not 4 <= n <= padded:
            raise ValueError(f"need 4 <= n <= padded, got n={n}, padded={padded}")
        shape = (padded, padded, padded // 2 + 1)
        if mode_variance.shape != shape:
            raise ValueError(f"mode_variance must have shape {shape}, got {mode_variance.shape}")
        self.n = n
        self.padded = padded
        plane_gain = 2.0 / full_grid_weights(padded)  # 2 on the two Hermitian planes, else 1
        # irfftn divides by padded^3; the complex normal has E|z|^2 = 2 (unit real and imag).
        amplitude = padded**3 * np.sqrt(mode_variance * plane_gain / 2.0)
        # Flat indices, not a boolean mask: numpy scatters through them several times faster.
        self._drawn = np.flatnonzero(mode_variance > 0)
        self._amplitude = amplitude.reshape(-1)[self._drawn].astype(np.float32)
        self._modes = np.zeros(shape, dtype=np.complex64)

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One field realisation (n, n, n) float32 from ``rng``."""
        noise = complex_normals(rng, self._amplitude, self._amplitude.size)
        self._modes.reshape(-1)[self._drawn] = noise
        return cropped_inverse_fft(self._modes, self.n)


def cropped_inverse_fft(modes: np.ndarray, n: int) -> np.ndarray:
    """The first n^3 voxels of ``irfftn(modes)`` (a cube of side ``modes.shape[0]``), float32.

    irfftn transforms the two complex axes and then the real one; cropping each axis as soon
    as it is transformed leaves the later transforms fewer lines: for n = padded / 2 this is
    0.58 of the full transform's work, and the same numbers. ``modes`` is left unchanged.
    """
    padded = modes.shape[0]
    lines = fft.ifft(modes, axis=0, workers=1)[:n]
    lines = fft.ifft(lines, axis=1, workers=1, overwrite_x=True)[:, :n]
    field = fft.irfft(lines, n=padded, axis=2, workers=1, overwrite_x=True)[:, :, :n]
    return np.ascontiguousarray(field)
