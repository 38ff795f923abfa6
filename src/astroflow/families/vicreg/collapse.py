"""The collapse check: stop a VICReg run whose embedding has collapsed, and say why.

Collapse is the failure of joint-embedding methods: every map gets the same output (the
variance term at its maximum), or every output dimension says the same thing (the
covariance term large: the dimensions are copies of one another). Both show on the
validation pairs long before the loss curve makes it obvious, and a collapsed run only
burns hours, so the run stops with the measured numbers and what to change.
"""

from __future__ import annotations

import numpy as np

from astroflow.models.vicreg import VARIANCE_EPS

_CONSTANT = 1e-8
"""Dimensions with a smaller standard deviation take no part in the correlation measure."""


class EmbeddingCollapse(RuntimeError):
    """The embedding collapsed; the message gives both measures and the settings to change."""


def collapse_measures(z: np.ndarray) -> tuple[float, float]:
    """(variance share, mean squared correlation) of outputs ``z`` (n, D), both in [0, 1].

    The variance share is the VICReg variance term over its maximum: 1 when every dimension
    is constant. The correlation is the mean squared off-diagonal correlation of the
    non-constant dimensions: 1 when they all move together (fewer than two: 1).
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"outputs must be (n >= 2, D), got {z.shape}")
    std = np.sqrt(z.var(axis=0, ddof=1) + VARIANCE_EPS)
    share = float(np.maximum(0.0, 1.0 - std).mean() / (1.0 - np.sqrt(VARIANCE_EPS)))
    live = z[:, z.std(axis=0) > _CONSTANT]
    if live.shape[1] < 2:
        return share, 1.0
    corr = np.corrcoef(live, rowvar=False)
    d = corr.shape[0]
    return share, float((np.sum(corr**2) - d) / (d * (d - 1)))


def check_collapse(z: np.ndarray, threshold: float) -> None:
    """Raise :class:`EmbeddingCollapse` when a measure of :func:`collapse_measures` of the
    validation outputs ``z`` (n, D) reaches ``threshold``."""
    share, correlation = collapse_measures(z)
    if share >= threshold or correlation >= threshold:
        raise EmbeddingCollapse(
            f"the embedding collapsed: variance term at {share:.0%} of its maximum, mean "
            f"squared correlation between output dimensions {correlation:.2f} (the check "
            f"stops at {threshold}, setting 'collapse_threshold'). Raise the 'variance' or "
            "'covariance' weight, or lower 'lr', then rerun with 'restart: true'"
        )
