"""Power spectra, cross-correlation coefficients and one-point PDFs of periodic 3D fields.

Conventions: a field is (..., N, N, N) on a periodic cube of side ``box_size`` (Mpc/h); k is
in h/Mpc (k = 2 pi f / L); P(k) = <|FFT(x) (L/N)^3|^2> / L^3 in (Mpc/h)^3, the field's mean
removed. Bins are one fundamental wide, centred on k_f, 2 k_f, ... k_Nyquist, so they run from
the fundamental to the grid's Nyquist frequency.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

from astroflow.volumes.synthetic import wavenumbers


def _binning(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bin of every rfftn mode (-1: outside), its |k| in units of k_f, the half-space weight
    and the number of full-grid modes per bin."""
    kz, ky, kx = wavenumbers(n)
    k = np.sqrt(kz**2 + ky**2 + kx**2)
    index = np.floor(k + 0.5).astype(np.int64) - 1
    index[(index < 0) | (index >= n // 2)] = -1
    weight = np.full(k.shape, 2.0)
    weight[..., 0] = 1.0
    weight[..., -1] = 1.0
    kept = index >= 0
    n_modes = np.bincount(index[kept], weights=weight[kept], minlength=n // 2)
    return index, k, weight, n_modes


def cross_power_3d(
    a: np.ndarray, b: np.ndarray, box_size: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned cross spectrum Re<a_k b_k*> of fields (..., N, N, N); returns (k_mean, power
    (..., N // 2), n_modes). With ``a is b`` it is the power spectrum."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n = a.shape[-1]
    if a.shape != b.shape or a.shape[-3:] != (n, n, n) or n < 4:
        raise ValueError(
            f"fields must be (..., N, N, N) of one shape with N >= 4: {a.shape}, {b.shape}"
        )
    index, k, weight, n_modes = _binning(n)
    axes = (-3, -2, -1)
    fa = fft.rfftn(a - a.mean(axis=axes, keepdims=True), axes=axes)
    fb = fa if b is a else fft.rfftn(b - b.mean(axis=axes, keepdims=True), axes=axes)
    mode = (fa * np.conj(fb)).real * (box_size**3 / n**6)
    kept = index >= 0
    flat = (mode * weight)[..., kept]
    power = np.stack(
        [
            np.bincount(index[kept], weights=row, minlength=n // 2)
            for row in flat.reshape(-1, flat.shape[-1])
        ]
    ).reshape(*a.shape[:-3], n // 2)
    k_mean = np.bincount(index[kept], weights=(k * weight)[kept], minlength=n // 2) / n_modes
    return k_mean * 2 * np.pi / box_size, power / n_modes, n_modes.astype(np.int64)


def power_spectrum_3d(field: np.ndarray, box_size: float) -> tuple[np.ndarray, np.ndarray]:
    """(k, P(k)) of field(s) (..., N, N, N), see :func:`cross_power_3d`."""
    k, power, _ = cross_power_3d(field, field, box_size)
    return k, power


def correlation_coefficient(
    a: np.ndarray, b: np.ndarray, box_size: float
) -> tuple[np.ndarray, np.ndarray]:
    """(k, r(k)) = P_ab / sqrt(P_aa P_bb), the spectra summed over the leading axes first (so
    several volumes give one estimate with their modes pooled)."""
    k, pab, _ = cross_power_3d(a, b, box_size)
    _, paa, _ = cross_power_3d(a, a, box_size)
    _, pbb, _ = cross_power_3d(b, b, box_size)
    lead = tuple(range(pab.ndim - 1))
    return k, pab.sum(lead) / np.sqrt(paa.sum(lead) * pbb.sum(lead))


def one_point_pdf(
    samples: dict[str, np.ndarray], bins: int = 60, log: bool = False
) -> dict[str, list[float]]:
    """Histogram densities of several arrays on shared edges (log10 of the values if ``log``);
    returns ``edges`` and one density per key."""
    values = {name: np.log10(v) if log else np.asarray(v) for name, v in samples.items()}
    lo = min(float(np.percentile(v, 0.1)) for v in values.values())
    hi = max(float(np.percentile(v, 99.9)) for v in values.values())
    edges = np.linspace(lo, hi, bins + 1)
    out = {"edges": edges.tolist()}
    for name, v in values.items():
        out[name] = np.histogram(v, edges, density=True)[0].tolist()
    return out
