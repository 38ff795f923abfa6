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

import numpy as np
from scipy import fft

from astroflow.cubes.kernels import fill_complex_normals


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


def philox_key(rng: np.random.Generator) -> tuple[np.uint64, np.uint64]:
    """A fresh 64-bit Philox key from ``rng``, as the two 32-bit halves the kernels take: the
    normals themselves come from a counter-based generator inside the compiled loop
    (:mod:`astroflow.cubes.kernels`), one draw of ``rng`` per field."""
    word = int(rng.bit_generator.random_raw())
    return np.uint64(word & 0xFFFFFFFF), np.uint64(word >> 32)


def add_standard_normals(rng: np.random.Generator, out: np.ndarray, scale: float) -> None:
    """Add ``scale`` times independent standard normals to the float32 array ``out`` in place:
    the real and imaginary parts of complex normals, two independent normals each."""
    if out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError("add_standard_normals needs a C-contiguous float32 array")
    count = (out.size + 1) // 2
    values = np.empty(4 * ((count + 1) // 2), np.float32)
    no_runs = np.zeros(0, np.int64)  # nothing to place: the values are the noise, in order
    fill_complex_normals(
        philox_key(rng), np.full(count, scale, np.float32), no_runs, no_runs, values, values
    )
    out += values[: out.size].reshape(out.shape)


def _runs(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of consecutive values in sorted ``indices``."""
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate(([0], breaks))
    lengths = np.diff(np.concatenate((starts, [indices.size])))
    return indices[starts].astype(np.int64), lengths.astype(np.int64)


class CroppedGaussianField:
    """Draws zero-mean Gaussian fields (n, n, n) float32 with the given mode variances.

    The complex white noise is drawn directly on the rfftn grid, so one inverse FFT per field
    suffices. On the kz = 0 and Nyquist planes the inverse real FFT keeps only the Hermitian
    part (X(k) + X*(-k)) / 2 of the noise, which halves its variance; those planes are
    amplified by sqrt(2) to compensate, so every mode has exactly the requested variance.
    The amplitudes are computed once; :meth:`draw` is the per-core cost: one complex normal
    per mode of non-zero variance (only those are drawn; along the last axis they form runs of
    consecutive modes, which one compiled pass fills) and one single-precision inverse FFT of
    the padded box. The mode buffers are reused between draws, so one instance must not be
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
        drawn = np.flatnonzero(mode_variance > 0)
        self._run_start, self._run_length = _runs(drawn)
        self._amplitude = amplitude.reshape(-1)[drawn].astype(np.float32)
        self._modes = np.zeros(shape, dtype=np.complex64)
        self._values = np.empty(4 * ((drawn.size + 1) // 2), dtype=np.float32)

    def draw_modes(self, rng: np.random.Generator) -> np.ndarray:
        """Fill the mode buffer with a new realisation from ``rng`` and return it (no copy)."""
        flat = self._modes.reshape(-1).view(np.float32)
        fill_complex_normals(
            philox_key(rng),
            self._amplitude,
            self._run_start,
            self._run_length,
            self._values,
            flat,
        )
        return self._modes

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        """One field realisation (n, n, n) float32 from ``rng``."""
        return cropped_inverse_fft(self.draw_modes(rng), self.n)


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
