"""The CAMELS Multifield Dataset (CMD) 2D-map layout: file names, parameters and their ranges.

Real downloads and the synthetic generator both go through these names, so everything
downstream sees one layout whichever source produced it.
"""

from __future__ import annotations

import zlib

import numpy as np

MAPS_PER_SIM = 15
"""CMD stores 15 projected maps per simulation; map ``i`` belongs to simulation ``i // 15``."""

PARAM_NAMES: tuple[str, ...] = ("Omega_m", "sigma_8", "A_SN1", "A_AGN1", "A_SN2", "A_AGN2")

SYNTHETIC_SUITES: tuple[str, ...] = ("IllustrisTNG", "SIMBA", "Astrid")
"""Suites the synthetic generator stands in for (its feedback models:
:data:`astroflow.maps.synthetic.SUITE_MODELS`)."""

SYNTHETIC_FIELDS: tuple[str, ...] = ("Mgas", "HI", "B")
"""Fields the synthetic generator makes; real CMD data offer all of :data:`MAP_FIELDS`."""

LH_RANGES: dict[str, tuple[float, float]] = {
    "Omega_m": (0.1, 0.5),
    "sigma_8": (0.6, 1.0),
    "A_SN1": (0.25, 4.0),
    "A_AGN1": (0.25, 4.0),
    "A_SN2": (0.5, 2.0),
    "A_AGN2": (0.5, 2.0),
}
"""Latin-hypercube prior ranges of the LH set; used for fixed min-max parameter scaling."""
LOG_SAMPLED: frozenset[str] = frozenset({"A_SN1", "A_AGN1", "A_SN2", "A_AGN2"})
"""Parameters that CAMELS samples uniformly in log (the feedback efficiencies)."""


def map_filename(field: str, suite: str, set_name: str, redshift: float = 0.0) -> str:
    """CMD name of a 2D-map file, e.g. ``Maps_Mgas_IllustrisTNG_LH_z=0.00.npy``."""
    return f"Maps_{field}_{suite}_{set_name}_z={redshift:.2f}.npy"


def params_filename(suite: str, set_name: str) -> str:
    """CMD name of the parameter table, e.g. ``params_LH_IllustrisTNG.txt``."""
    return f"params_{set_name}_{suite}.txt"


def scale_params(theta: np.ndarray) -> np.ndarray:
    """Min-max scale raw parameters (..., 6) to [0, 1] with the fixed LH ranges."""
    lo, hi = _range_arrays()
    return ((theta - lo) / (hi - lo)).astype(np.float32)


def unscale_params(scaled: np.ndarray) -> np.ndarray:
    """Inverse of :func:`scale_params`."""
    lo, hi = _range_arrays()
    return (scaled * (hi - lo) + lo).astype(np.float32)


def _range_arrays() -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([LH_RANGES[p][0] for p in PARAM_NAMES], dtype=np.float64)
    hi = np.array([LH_RANGES[p][1] for p in PARAM_NAMES], dtype=np.float64)
    return lo, hi


def suite_seed(seed: int, suite: str, primary: str) -> int:
    """Seed of the synthetic stand-in of ``suite``: ``seed`` itself for the config's own suite
    (``primary``), a different, stable one for every other suite, as CMD's suites are separate
    simulations with their own parameter samples and initial conditions."""
    if suite == primary:
        return seed
    return int(np.random.SeedSequence([seed, zlib.crc32(suite.encode())]).generate_state(1)[0])


def outside_lh_ranges(theta: np.ndarray) -> np.ndarray:
    """Which rows of raw parameters (n, 6) lie outside the LH ranges the networks are trained
    on (1P, EX and BE sets do on purpose): predictions there are extrapolations."""
    lo, hi = _range_arrays()
    theta = np.asarray(theta, dtype=np.float64)
    return ((theta < lo * (1 - 1e-6)) | (theta > hi * (1 + 1e-6))).any(axis=1)
