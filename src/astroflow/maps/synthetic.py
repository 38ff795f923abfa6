"""Synthetic CAMELS-like 2D maps (Mgas, HI, B) written in exactly the CMD raw layout.

The real CMD data cannot be downloaded on every machine, so the default workflow synthesises
maps whose statistics respond to the same six parameters in physically motivated ways:

- Mgas: log-normal transform of a Gaussian random field with the spectrum of
  :func:`~astroflow.maps.power_spectrum.input_power_spectrum` (cosmology only: sigma_8 sets the
  amplitude, Omega_m the turnover), around the mean baryon column density of a CMD slab.
- HI: the gas times a neutral fraction: photoionised (f proportional to density) at low density,
  self-shielded plateau at high density lowered by supernova winds (A_SN1), quenched in the
  densest halos by AGN heating (A_AGN1), spread by the wind speed (A_SN2), with log-normal
  scatter whose size follows AGN burstiness (A_AGN2).
- B: flux-frozen B ~ rho^(2/3), amplified in dense star-forming gas by SN-driven turbulence
  (A_SN1), plus a diffuse component of magnetised AGN outflows (amplitude A_AGN1, reach A_AGN2),
  with log-normal scatter.

The scatter fields are independent small-scale Gaussian fields, so HI and B correlate with the
gas (and each other) without being functions of it. Suites (IllustrisTNG, SIMBA, Astrid) differ
as their feedback models do (:data:`SUITE_MODELS`): where AGN remove HI, how far magnetised
outflows reach, and, for SIMBA, jets that spread part of the gas.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft

from astroflow.io import atomic_path
from astroflow.maps import cmd
from astroflow.maps.cmd import LOG_SAMPLED, SYNTHETIC_FIELDS
from astroflow.maps.power_spectrum import (
    gaussian_random_field,
    grid_variance,
    input_power_spectrum,
)

RHO_CRIT = 2.775e11
"""Critical density in (Msun/h) / (Mpc/h)^3."""
OMEGA_B = 0.049
"""Baryon density of all CAMELS simulations (fixed, so the mean gas column is too)."""
SLABS_PER_BOX = 5
"""CMD projects 5 slabs along each of 3 axes (15 maps per simulation): depth = box_size / 5."""
HYDROGEN_FRACTION = 0.76
"""Primordial hydrogen mass fraction."""

# HI = X_H Mgas f_HI, smoothed over the wind reach, times scatter. With delta = Mgas / mean and
# y = delta / DELTA_SELF_SHIELD:
#   f_HI = F_NEUTRAL y / (1 + y A_SN1^SN_PLATEAU_SLOPE) / (1 + (delta A_AGN1 / DELTA_AGN)^2)
# f ~ F_NEUTRAL y below self-shielding (photoionisation equilibrium: HI ~ rho^2), a plateau
# F_NEUTRAL A_SN1^-0.75 above it (winds remove dense gas), cut where AGN heat the densest gas.
F_NEUTRAL = 0.04
DELTA_SELF_SHIELD = 2.5
SN_PLATEAU_SLOPE = 0.75
DELTA_AGN = 10.0
WIND_RADIUS = 0.25
"""Mpc/h; HI is smoothed over WIND_RADIUS * A_SN2 (faster winds carry gas further)."""
HI_SCATTER = 0.45
"""ln-rms of the HI scatter at A_AGN2 = 1; it grows as sqrt(A_AGN2) (burstier AGN)."""

# B = (B_FROZEN delta^(2/3) sqrt(1 + A_SN1 delta / DELTA_DYNAMO)
#      + B_OUTFLOW A_AGN1 S_{OUTFLOW_RADIUS A_AGN2}[delta^2]) times scatter,
# S_r a Gaussian smoothing over r: outflows spread field from dense (delta^2-weighted) gas.
B_FROZEN = 1e-8
"""Gauss at mean density."""
DELTA_DYNAMO = 5.0
B_OUTFLOW = 2e-9
"""Gauss per unit smoothed delta^2 at A_AGN1 = 1."""
OUTFLOW_RADIUS = 0.8
"""Mpc/h at A_AGN2 = 1."""
B_SCATTER = 0.3
"""ln-rms of the B scatter."""

SCATTER_RADIUS = 0.25
"""Mpc/h; correlation length of the scatter fields, about a pixel of a 64x64 map."""


@dataclass(frozen=True)
class SuiteModel:
    """What a simulation suite's subgrid physics changes in the synthetic baryons.

    CMD suites share cosmology, initial conditions and gravity, and differ in their feedback
    models; so do their synthetic stand-ins. ``delta_agn``: overdensity above which AGN heating
    removes HI; ``outflow_radius``: reach (Mpc/h at A_AGN2 = 1) of magnetised AGN outflows;
    ``jet_fraction``, ``jet_radius``: share of the gas that AGN jets spread over ``jet_radius``
    * A_AGN1 Mpc/h (SIMBA's bipolar jets move gas out of haloes, which no other suite does).
    """

    delta_agn: float = DELTA_AGN
    outflow_radius: float = OUTFLOW_RADIUS
    jet_fraction: float = 0.0
    jet_radius: float = 0.5


SUITE_MODELS: dict[str, SuiteModel] = {
    "IllustrisTNG": SuiteModel(),
    "SIMBA": SuiteModel(delta_agn=4.0, outflow_radius=1.6, jet_fraction=0.3),
    "Astrid": SuiteModel(delta_agn=25.0, outflow_radius=0.5),
}
"""Suites the synthetic generator can stand in for, and their feedback models."""


def sample_lh_params(n_sims: int, rng: np.random.Generator) -> np.ndarray:
    """Latin hypercube over the CMD LH ranges: (n_sims, 6) in ``cmd.PARAM_NAMES`` order.

    Each parameter's range is cut into n_sims equal strata (in log for the feedback
    parameters, as CAMELS samples them) and every stratum holds exactly one simulation.
    """
    if n_sims < 1:
        raise ValueError(f"n_sims must be >= 1, got {n_sims}")
    n_params = len(cmd.PARAM_NAMES)
    strata = rng.permuted(np.tile(np.arange(n_sims), (n_params, 1)), axis=1).T
    u = (strata + rng.random((n_sims, n_params))) / n_sims
    theta = np.empty_like(u)
    for j, name in enumerate(cmd.PARAM_NAMES):
        lo, hi = cmd.LH_RANGES[name]
        theta[:, j] = lo * (hi / lo) ** u[:, j] if name in LOG_SAMPLED else lo + (hi - lo) * u[:, j]
    return theta


def synthesize_maps_for_sim(
    theta: np.ndarray,
    n_maps: int,
    map_size: int,
    box_size: float,
    rng: np.random.Generator,
    fields: Sequence[str] = SYNTHETIC_FIELDS,
    suite: SuiteModel = SUITE_MODELS["IllustrisTNG"],
) -> dict[str, np.ndarray]:
    """Maps of one simulation: ``{field: (n_maps, map_size, map_size) float32}``, all positive.

    ``theta`` (6,) is in ``cmd.PARAM_NAMES`` order. Every map is an independent realisation of
    the same parameters (like the 15 slabs of one CMD simulation). Mgas is in (Msun/h)/(Mpc/h)^2,
    HI too, B in Gauss. The gas and the two scatter fields draw from separate child streams of
    ``rng``, so asking for fewer fields does not change the ones returned.
    """
    unknown = [f for f in fields if f not in SYNTHETIC_FIELDS]
    if unknown:
        raise ValueError(f"cannot synthesise fields {unknown}; available: {SYNTHETIC_FIELDS}")
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (len(cmd.PARAM_NAMES),):
        raise ValueError(f"theta must have shape ({len(cmd.PARAM_NAMES)},), got {theta.shape}")
    omega_m, sigma_8, a_sn1, a_agn1, a_sn2, a_agn2 = theta
    gas_rng, hi_rng, b_rng = rng.spawn(3)

    def power(kk: np.ndarray) -> np.ndarray:
        return input_power_spectrum(kk, omega_m, sigma_8)

    g = gaussian_random_field(map_size, box_size, power, gas_rng, size=n_maps)
    # exp(g - var/2) has unit mean, so the expected mean column is the cosmic baryon one.
    delta = np.exp(g - 0.5 * grid_variance(map_size, box_size, power))
    if suite.jet_fraction:  # smoothing keeps the mean, so the mean column stays cosmic
        spread = _smooth(delta, box_size, suite.jet_radius * a_agn1)
        delta = (1.0 - suite.jet_fraction) * delta + suite.jet_fraction * spread
    mean_column = OMEGA_B * RHO_CRIT * box_size / SLABS_PER_BOX

    out: dict[str, np.ndarray] = {}
    if "Mgas" in fields:
        out["Mgas"] = (mean_column * delta).astype(np.float32)
    if "HI" in fields:
        y = delta / DELTA_SELF_SHIELD
        neutral = F_NEUTRAL * y / (1.0 + y * a_sn1**SN_PLATEAU_SLOPE)
        neutral /= 1.0 + (delta * a_agn1 / suite.delta_agn) ** 2
        hi = HYDROGEN_FRACTION * mean_column * delta * neutral
        hi = _smooth(hi, box_size, WIND_RADIUS * a_sn2)
        hi *= _lognormal_scatter(HI_SCATTER * np.sqrt(a_agn2), map_size, box_size, n_maps, hi_rng)
        out["HI"] = hi.astype(np.float32)
    if "B" in fields:
        frozen = B_FROZEN * delta ** (2.0 / 3.0) * np.sqrt(1.0 + a_sn1 * delta / DELTA_DYNAMO)
        outflow = B_OUTFLOW * a_agn1 * _smooth(delta**2, box_size, suite.outflow_radius * a_agn2)
        b = (frozen + outflow) * _lognormal_scatter(B_SCATTER, map_size, box_size, n_maps, b_rng)
        out["B"] = b.astype(np.float32)
    return out


def write_synthetic_cmd(
    out_dir: str | os.PathLike[str],
    suite: str,
    set_name: str,
    fields: Sequence[str],
    n_sims: int,
    map_size: int,
    box_size: float,
    seed: int,
) -> list[Path]:
    """Write a synthetic CMD set: one ``Maps_{field}`` .npy per field plus the parameter table.

    Map files are float32 (15 * n_sims, N, N), map i from simulation i // 15, filled sim by
    sim through a memory map on an atomic temporary path, so memory stays at one simulation and
    nothing appears under a final name unless every file is complete. Parameters are rounded to
    the 5 decimals written in the table before synthesis, so the table is the exact truth.
    ``SeedSequence(seed)`` child 0 draws the parameters and child i + 1 the maps of simulation
    i: same seed, same bytes. ``suite`` names the feedback model (:data:`SUITE_MODELS`).
    Returns the map paths in ``fields`` order, then the parameter table path.
    """
    fields = list(fields)
    unknown = [f for f in fields if f not in SYNTHETIC_FIELDS]
    if not fields or unknown or len(set(fields)) != len(fields):
        raise ValueError(f"fields must be distinct names among {SYNTHETIC_FIELDS}, got {fields}")
    if suite not in SUITE_MODELS:
        raise ValueError(f"no synthetic model of suite {suite!r}; known: {list(SUITE_MODELS)}")
    out_dir = Path(out_dir)
    param_seq, *sim_seqs = np.random.SeedSequence(seed).spawn(n_sims + 1)
    theta = np.round(sample_lh_params(n_sims, np.random.default_rng(param_seq)), 5)
    n_maps = cmd.MAPS_PER_SIM
    map_paths = [out_dir / cmd.map_filename(f, suite, set_name) for f in fields]
    params_path = out_dir / cmd.params_filename(suite, set_name)

    with contextlib.ExitStack() as stack:
        arrays = {}
        for field, path in zip(fields, map_paths, strict=True):
            tmp = stack.enter_context(atomic_path(path))
            arrays[field] = np.lib.format.open_memmap(
                tmp, mode="w+", dtype="<f4", shape=(n_maps * n_sims, map_size, map_size)
            )
        for i, seq in enumerate(sim_seqs):
            maps = synthesize_maps_for_sim(
                theta[i],
                n_maps,
                map_size,
                box_size,
                np.random.default_rng(seq),
                fields,
                SUITE_MODELS[suite],
            )
            for field in fields:
                arrays[field][i * n_maps : (i + 1) * n_maps] = maps[field]
        for array in arrays.values():
            array.flush()
        arrays.clear()
        tmp = stack.enter_context(atomic_path(params_path))
        np.savetxt(tmp, theta, fmt="%.5f")
    return [*map_paths, params_path]


def _smooth(maps: np.ndarray, box_size: float, radius: float) -> np.ndarray:
    """Periodic Gaussian smoothing of maps (..., N, N) over ``radius`` (Mpc/h).

    The kernel is built in pixel space and normalised to unit sum, so it keeps the mean and,
    unlike a Gaussian cut at the Nyquist frequency, never turns a positive map negative
    (radii below a pixel shrink it towards the identity).
    """
    n = maps.shape[-1]
    offset = np.minimum(np.arange(n), n - np.arange(n)) * (box_size / n)
    dist2 = offset[:, None] ** 2 + offset[None, :] ** 2
    kernel = np.exp(-0.5 * dist2 / radius**2)
    kernel /= kernel.sum()
    return fft.irfft2(fft.rfft2(maps) * fft.rfft2(kernel), s=(n, n))


def _lognormal_scatter(
    sigma: float, map_size: int, box_size: float, n_maps: int, rng: np.random.Generator
) -> np.ndarray:
    """Unit-mean log-normal multiplicative scatter (n_maps, N, N) of ln-rms ``sigma``.

    The underlying Gaussian field has a Gaussian spectrum of width 1 / SCATTER_RADIUS, so the
    scatter lives on small scales, with its rms fixed whatever the resolution.
    """

    def power(k: np.ndarray) -> np.ndarray:
        return np.exp(-((k * SCATTER_RADIUS) ** 2))

    unit = grid_variance(map_size, box_size, power)
    g = gaussian_random_field(map_size, box_size, power, rng, size=n_maps)
    return np.exp(sigma * g / np.sqrt(unit) - 0.5 * sigma**2)
