"""Differentiable summary statistics of generated maps, and the per-simulation targets that
the generator's statistics terms pull them towards.

The emulator is judged per simulation (:mod:`astroflow.families.gan2d.evaluation`): the mean
auto spectra, cross-correlation coefficients r(k) and log10 pixel distributions of maps made at
one simulation's parameters against that simulation's maps. The training step measures the
same statistics on groups of generated maps that share one training simulation's parameters and
compares them with that simulation's statistics, measured once on all its maps:

- spectra: the estimator of :func:`astroflow.maps.power_spectrum.power_spectrum_2d` (mean
  removed, linear |k| bins one fundamental wide, mirrored modes counted twice), averaged over
  the maps of a set; the loss is the mean |ln P_fake - ln P_real| over fields and bins;
- r(k) = P_ab / sqrt(P_aa P_bb) of the set means, per field pair; the loss is the mean
  |r_fake - r_real|;
- the pixel distribution as :data:`QUANTILES` means of the quantile function over equal
  probability intervals; the mean absolute difference of two of them is the Wasserstein-1
  distance of the pixel distributions at that resolution (the evaluation's PDF metric).

Maps are (n, F, N, N) standardized log10 fields, as the shards hold them; the units of the
spectra do not matter, since the losses compare ratios of spectra made by the same estimator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from astroflow.evaluation.fields import field_pairs
from astroflow.maps.power_spectrum import half_plane_weights, k_modulus_units

QUANTILES = 256
"""Equal-probability intervals of the pixel distribution that the PDF term compares (at most
N^2 for N x N maps)."""
EPSILON = 1e-30
"""Floor of the binned power before the logarithm (far below any power of unit-variance maps)."""


def binning_matrix(n: int) -> torch.Tensor:
    """(N * (N//2 + 1), N//2) float64: column ``b`` averages the rfft2 modes of an N x N map
    in bin ``b`` (|k| / k_f in [b + 1/2, b + 3/2)), each mode weighted as it counts in the full
    plane, so ``|FFT|^2 @ matrix`` is :func:`power_spectrum_2d`'s binned power up to a
    constant factor."""
    k = k_modulus_units(n)
    weight = half_plane_weights(n)
    n_bins = n // 2
    edges = 0.5 + np.arange(n_bins + 1)
    index = np.digitize(k, edges) - 1
    matrix = np.zeros((k.size, n_bins))
    inside = (index >= 0) & (index < n_bins)
    rows = np.flatnonzero(inside.ravel())
    matrix[rows, index.ravel()[rows]] = weight.ravel()[rows]
    matrix /= matrix.sum(axis=0, keepdims=True)
    return torch.from_numpy(matrix)


def set_spectra(
    maps: torch.Tensor, matrix: torch.Tensor, pairs: Sequence[tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean auto spectra (..., F, K) and cross spectra (..., pairs, K) of sets of maps
    (..., n, F, N, N): the mean over the set axis ``n`` of every map's binned power."""
    centred = maps - maps.mean(dim=(-2, -1), keepdim=True)
    modes = torch.fft.rfft2(centred).flatten(-2)  # (..., n, F, M)
    matrix = matrix.to(device=maps.device, dtype=modes.real.dtype)
    auto = (modes.real.square() + modes.imag.square()) @ matrix
    if pairs:
        a, b = (list(side) for side in zip(*pairs, strict=True))
        product = modes[..., a, :] * modes[..., b, :].conj()
        cross = product.real @ matrix
    else:
        cross = auto[..., :0, :]
    return auto.mean(dim=-3), cross.mean(dim=-3)


def correlation(auto: torch.Tensor, cross: torch.Tensor, pairs) -> torch.Tensor:
    """r(k) = P_ab / sqrt(P_aa P_bb) (..., pairs, K) from set-mean spectra."""
    if not pairs:
        return cross
    a, b = (list(side) for side in zip(*pairs, strict=True))
    return cross / (auto[..., a, :] * auto[..., b, :]).clamp(min=EPSILON).sqrt()


def quantile_means(values: torch.Tensor, quantiles: int) -> torch.Tensor:
    """Means of the empirical quantile function of ``values`` (..., n) over ``quantiles``
    equal probability intervals (..., quantiles); n must be a multiple of ``quantiles``."""
    ordered = torch.sort(values, dim=-1).values
    return ordered.unflatten(-1, (quantiles, -1)).mean(dim=-1)


def exact_quantile_means(values: np.ndarray, quantiles: int) -> np.ndarray:
    """:func:`quantile_means` for any number of values (..., n), the intervals cut through
    samples where n is not a multiple of ``quantiles`` (the integral of the piecewise constant
    quantile function)."""
    ordered = np.sort(values, axis=-1)
    n = ordered.shape[-1]
    cumulative = np.concatenate(
        [np.zeros((*ordered.shape[:-1], 1)), np.cumsum(ordered, axis=-1)], axis=-1
    )
    cuts = np.linspace(0.0, n, quantiles + 1)
    below = np.floor(cuts).astype(int).clip(0, n - 1)
    integral = cumulative[..., below] + (cuts - below) * ordered[..., below]
    return np.diff(integral, axis=-1) * (quantiles / n)


@dataclass
class SimulationTargets:
    """Statistics of every training simulation, from all its maps, by simulation id.

    ``log_auto`` (S, F, K) ln of the mean auto spectra, ``r`` (S, pairs, K), ``quantiles``
    (S, F, Q) quantile means of each field's pixels; ``row`` maps a simulation id to its row.
    """

    sim_ids: np.ndarray
    log_auto: torch.Tensor
    r: torch.Tensor
    quantiles: torch.Tensor
    matrix: torch.Tensor
    pairs: list[tuple[int, int]]

    def rows(self, sim_ids: torch.Tensor) -> torch.Tensor:
        """Rows of the tables for simulation ids (any shape)."""
        ids = sim_ids.cpu().numpy()
        rows = np.searchsorted(self.sim_ids, ids)
        if np.any(rows >= len(self.sim_ids)) or np.any(self.sim_ids[rows.clip(0, None)] != ids):
            raise KeyError(f"simulations {sorted(set(ids.ravel().tolist()))} have no targets")
        return torch.from_numpy(rows)

    def to(self, device: torch.device | str) -> SimulationTargets:
        return SimulationTargets(
            self.sim_ids,
            self.log_auto.to(device),
            self.r.to(device),
            self.quantiles.to(device),
            self.matrix.to(device),
            self.pairs,
        )


def simulation_targets(
    maps: np.ndarray, sim_ids: np.ndarray, quantiles: int = QUANTILES
) -> SimulationTargets:
    """Targets of every simulation of ``maps`` (n, F, N, N) with ids ``sim_ids`` (n,)."""
    n_fields, size = maps.shape[1], maps.shape[-1]
    pairs = field_pairs(n_fields)
    matrix = binning_matrix(size)
    ids = np.unique(sim_ids)
    log_auto, r, quantile_table = [], [], []
    for sim in ids:
        group = torch.from_numpy(np.asarray(maps[sim_ids == sim], dtype=np.float64))
        auto, cross = set_spectra(group, matrix, pairs)
        log_auto.append(auto.clamp(min=EPSILON).log())
        r.append(correlation(auto, cross, pairs))
        pixels = group.transpose(0, 1).flatten(1).numpy()
        quantile_table.append(torch.from_numpy(exact_quantile_means(pixels, quantiles)))
    return SimulationTargets(
        ids,
        torch.stack(log_auto).float(),
        torch.stack(r).float(),
        torch.stack(quantile_table).float(),
        matrix.float(),
        pairs,
    )


def statistics_losses(
    fake: torch.Tensor, rows: torch.Tensor, targets: SimulationTargets
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distances of groups of generated maps ``fake`` (G, m, F, N, N), group ``g`` made at the
    parameters of the training simulation in row ``rows[g]``, from those simulations'
    statistics: mean |Δ ln P| (auto spectra), mean |Δr| (field pairs; 0 for one field), and
    the mean quantile difference (W1 of the pixel distributions, standardized units), and the
    mean |Δ| of the fields' pixel means (the shift part of W1, a lower bound of it)."""
    auto, cross = set_spectra(fake, targets.matrix, targets.pairs)
    spectrum = (auto.clamp(min=EPSILON).log() - targets.log_auto[rows]).abs().mean()
    if targets.pairs:
        r = correlation(auto, cross, targets.pairs)
        correlation_loss = (r - targets.r[rows]).abs().mean()
    else:
        correlation_loss = torch.zeros((), device=fake.device)
    pixels = fake.transpose(1, 2).flatten(2)  # (G, F, m N N)
    quantiles = quantile_means(pixels, targets.quantiles.shape[-1])
    difference = quantiles - targets.quantiles[rows]
    pdf = difference.abs().mean()
    shift = difference.mean(dim=-1).abs().mean()
    return spectrum, correlation_loss, pdf, shift
