"""How close super-resolved volumes are to the truth: spectra, r(k) and the numbers that sum
them up, shared by the per-epoch validation and the ``superres.json`` evaluation.

Fields are compared in physical units, densities as contrasts ρ/ρ̄ - 1. "Small scales" are the
k above the low-resolution Nyquist frequency where the interpolation baseline holds less than
half the true power: the scales the network must supply. Below that Nyquist frequency the
input resolves the modes, and the output should keep their phases (r(k) near 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from astroflow.evaluation.spectra3d import correlation_coefficient, power_spectrum_3d
from astroflow.volumes.shards import is_density

BASELINE_POWER_FRACTION = 0.5


def contrast(volumes: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """(n, C, N, N, N) physical volumes with densities as contrasts about each volume's mean."""
    out = np.array(volumes, dtype=np.float64)
    for c, name in enumerate(channels):
        if is_density(name):
            mean = out[:, c].mean(axis=(-3, -2, -1), keepdims=True)
            out[:, c] = out[:, c] / mean - 1.0
    return out


def compare_channel(
    truth: np.ndarray,
    candidates: dict[str, np.ndarray],
    box_size: float,
    k_lr_nyquist: float,
    reference: Sequence[str] = ("trilinear",),
) -> dict[str, Any]:
    """Spectra of one channel of (n, N, N, N) volumes: P(k) of the truth and of each candidate
    (volume-averaged), r(k) of each candidate with the truth, and per candidate the median
    |P/P_true - 1| over the small scales (set by the ``reference`` baselines) and the least
    and mean r(k) at k <= k_lr_nyquist."""
    k, p_true = power_spectrum_3d(truth, box_size)
    p_true = p_true.mean(0)
    powers = {name: power_spectrum_3d(v, box_size)[1].mean(0) for name, v in candidates.items()}
    r = {name: correlation_coefficient(v, truth, box_size)[1] for name, v in candidates.items()}
    baseline = np.max([powers[name] for name in reference], axis=0)
    small = (k > k_lr_nyquist) & (baseline < BASELINE_POWER_FRACTION * p_true)
    resolved = k <= k_lr_nyquist
    scores = {}
    for name in candidates:
        ratio = powers[name] / p_true
        scores[name] = {
            "power_error_small_scales": float(np.median(np.abs(ratio[small] - 1)))
            if small.any()
            else None,
            "r_min_resolved": float(r[name][resolved].min()),
            "r_mean_resolved": float(r[name][resolved].mean()),
        }
    return {
        "k": k.tolist(),
        "power_truth": p_true.tolist(),
        "power": {name: p.tolist() for name, p in powers.items()},
        "r": {name: v.tolist() for name, v in r.items()},
        "small_scales": small.tolist(),
        "scores": scores,
    }


def validation_loss(report: dict[str, Any], candidate: str = "output") -> float:
    """One number per epoch (lower is better): mean over channels of the median |ln P/P_true|
    on the small scales plus the mean of 1 - r(k) on the resolved ones."""
    losses = []
    for channel in report.values():
        k_small = np.asarray(channel["small_scales"])
        ratio = np.asarray(channel["power"][candidate]) / np.asarray(channel["power_truth"])
        power = float(np.median(np.abs(np.log(ratio[k_small])))) if k_small.any() else 0.0
        losses.append(power + 1.0 - channel["scores"][candidate]["r_mean_resolved"])
    return float(np.mean(losses))
