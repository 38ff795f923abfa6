"""Scores of regressions: the one R^2 of the project and the per-parameter metrics table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def r2_score(truth: np.ndarray, predicted: np.ndarray) -> float | None:
    """1 - SS_res / SS_tot over all elements (1 is perfect, 0 is no better than the mean of
    the truth, below 0 is worse). None when the truth does not vary, where R^2 is undefined
    (a JSON product then says so instead of holding a made-up number)."""
    truth = np.asarray(truth, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth {truth.shape} and prediction {predicted.shape} differ in shape")
    ss_tot = float(np.sum((truth - truth.mean()) ** 2))
    if ss_tot == 0.0:
        return None
    return 1.0 - float(np.sum((predicted - truth) ** 2)) / ss_tot


def regression_metrics(
    mean: np.ndarray, std: np.ndarray, truth: np.ndarray, names: Sequence[str]
) -> dict[str, dict[str, float | None]]:
    """Per-parameter scores of predictions ``mean`` +- ``std`` against ``truth``, all (n, P).

    For each name: ``rmse``; ``r2`` (:func:`r2_score`); ``mean_relative_error`` = mean
    |mean - truth| / |truth|; ``mean_sigma`` = mean predicted std; ``frac_within_1sigma`` =
    fraction of maps with |mean - truth| <= std, about 0.68 for calibrated Gaussian errors.
    """
    mean, std, truth = (np.asarray(a, dtype=np.float64) for a in (mean, std, truth))
    if not mean.shape == std.shape == truth.shape or mean.ndim != 2:
        raise ValueError(
            f"mean, std, truth must share one (n, P) shape, got {mean.shape}, {std.shape}, "
            f"{truth.shape}"
        )
    if mean.shape[1] != len(names):
        raise ValueError(f"{mean.shape[1]} parameter columns but {len(names)} names {names}")
    err = mean - truth
    return {
        name: {
            "rmse": float(np.sqrt(np.mean(err[:, j] ** 2))),
            "r2": r2_score(truth[:, j], mean[:, j]),
            "mean_relative_error": float(np.mean(np.abs(err[:, j]) / np.abs(truth[:, j]))),
            "mean_sigma": float(np.mean(std[:, j])),
            "frac_within_1sigma": float(np.mean(np.abs(err[:, j]) <= std[:, j])),
        }
        for j, name in enumerate(names)
    }
