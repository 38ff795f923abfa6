"""Summary statistics that judge generated multifield maps against real ones of the same
parameters: auto spectra, cross-correlation coefficients and one-point PDFs, and the
distances between two sets of maps that an emulator's validation reports.

A set of maps is an array (n, F, N, N): ``n`` maps of ``F`` fields on a periodic square of
side ``box_size`` (Mpc/h), in whatever units the caller compares (the shards' standardized
log10 fields, say). Spectra are those of :func:`astroflow.maps.power_spectrum.power_spectrum_2d`,
averaged over the maps of a set, so a distance compares the mean statistics of two sets.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from astroflow.maps.power_spectrum import power_spectrum_2d

MIN_MODES = 24
"""Bins with fewer Fourier modes (the largest scales: 8, 12, 16 modes in the first three
one-k_f annuli, 28 or more beyond) are too noisy for 15 maps to pin down a ratio: they are
left out of the "well-sampled" medians."""


def field_pairs(n_fields: int) -> list[tuple[int, int]]:
    """Index pairs (a, b), a < b, of ``n_fields`` fields, in a fixed order."""
    return list(combinations(range(n_fields), 2))


def cross_spectrum(a: np.ndarray, b: np.ndarray, box_size: float) -> tuple[np.ndarray, ...]:
    """Binned cross spectrum Re<A B*> of maps ``a`` and ``b`` (..., N, N): (k, P_ab, n_modes).

    Polarisation of the auto estimator, (P(a + b) - P(a - b)) / 4, which is exact because the
    binning is linear: the bins, their modes and the mean removal are those of the auto spectra.
    """
    k, plus, n_modes = power_spectrum_2d(a + b, box_size)
    _, minus, _ = power_spectrum_2d(a - b, box_size)
    return k, (plus - minus) / 4.0, n_modes


def set_spectra(maps: np.ndarray, box_size: float) -> dict[str, np.ndarray]:
    """Mean auto spectra (F, K) and cross-correlation coefficients r(k) (pairs, K) of a set of
    maps (n, F, N, N), with ``k`` (K,) and ``n_modes`` (K,).

    r(k) = P_ab / sqrt(P_aa P_bb) of the set means: 1 for a field with itself, 0 for
    independent fields.
    """
    maps = _check_set(maps)
    k, auto, n_modes = power_spectrum_2d(maps, box_size)
    auto = auto.mean(axis=0)
    r = []
    for a, b in field_pairs(maps.shape[1]):
        _, cross, _ = cross_spectrum(maps[:, a], maps[:, b], box_size)
        r.append(cross.mean(axis=0) / np.sqrt(auto[a] * auto[b]))
    return {"k": k, "n_modes": n_modes, "auto": auto, "r": np.array(r).reshape(-1, len(k))}


def well_sampled(n_modes: np.ndarray) -> np.ndarray:
    """Mask of the k bins that the medians use (at least :data:`MIN_MODES` modes)."""
    return np.asarray(n_modes) >= MIN_MODES


def spectrum_error(p_test: np.ndarray, p_ref: np.ndarray, n_modes: np.ndarray) -> float:
    """Median over well-sampled k of |P_test / P_ref - 1| (one field's mean spectra)."""
    mask = well_sampled(n_modes)
    return float(np.median(np.abs(p_test[mask] / p_ref[mask] - 1.0)))


def correlation_error(r_test: np.ndarray, r_ref: np.ndarray, n_modes: np.ndarray) -> float:
    """Median over well-sampled k of |r_test(k) - r_ref(k)| (one field pair)."""
    mask = well_sampled(n_modes)
    return float(np.median(np.abs(r_test[mask] - r_ref[mask])))


def pdf_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance between the pixel distributions of ``a`` and ``b`` (any shapes):
    the mean shift of pixel values it takes to turn one histogram into the other, in the
    units of the maps (dex for log10 fields).

    W1 is the integral of |F_a^-1(q) - F_b^-1(q)| over q: for samples of equal size, the mean
    distance of the sorted values (exact, and several times faster than a general CDF merge
    on the ~10^5 pixels of a simulation's maps); otherwise the quantile functions compared on
    the larger sample's grid of probabilities.
    """
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    if a.size != b.size:
        q = (np.arange(max(a.size, b.size)) + 0.5) / max(a.size, b.size)
        a, b = np.quantile(a, q), np.quantile(b, q)
    return float(np.mean(np.abs(a - b)))


def compare_sets(
    test: np.ndarray,
    reference: np.ndarray,
    box_size: float,
    log10_std: np.ndarray,
) -> dict[str, np.ndarray]:
    """Distances of a set ``test`` from a set ``reference`` (both (n, F, N, N) standardized
    log10 fields of one parameter set).

    Returns ``spectrum`` (F,) median |P_test/P_ref - 1|, ``pdf`` (F,) W1 of the log10 pixel
    values in dex (the standardization's scale undone with ``log10_std`` (F,); W1 does not
    see a common shift),
    ``correlation`` (pairs,) median |r_test - r_ref|, and the curves behind them:
    ``ratio`` (F, K) P_test/P_ref, ``r_test``, ``r_ref`` (pairs, K), ``k`` and ``n_modes``.
    """
    test, reference = _check_set(test), _check_set(reference)
    if test.shape[1:] != reference.shape[1:]:
        raise ValueError(f"sets of maps {test.shape} and {reference.shape} differ in shape")
    s_test, s_ref = set_spectra(test, box_size), set_spectra(reference, box_size)
    n_modes = s_ref["n_modes"]
    n_fields = test.shape[1]
    return {
        "spectrum": np.array(
            [spectrum_error(s_test["auto"][f], s_ref["auto"][f], n_modes) for f in range(n_fields)]
        ),
        "pdf": np.array(
            [
                pdf_distance(test[:, f], reference[:, f]) * float(log10_std[f])
                for f in range(n_fields)
            ]
        ),
        "correlation": np.array(
            [
                correlation_error(s_test["r"][j], s_ref["r"][j], n_modes)
                for j in range(len(s_ref["r"]))
            ]
        ),
        "ratio": s_test["auto"] / s_ref["auto"],
        "r_test": s_test["r"],
        "r_ref": s_ref["r"],
        "k": s_ref["k"],
        "n_modes": n_modes,
    }


def _check_set(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 4 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"a set of maps has shape (n, fields, N, N), got {maps.shape}")
    return maps
