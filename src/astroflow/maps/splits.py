"""Train/val/test splits by simulation, and the map indices of every shard.

The 15 maps of one CMD simulation share its parameters, so a split by map would put the
same cosmology in train and test and flatter every metric. Splits are therefore drawn over
simulation ids, and a map goes wherever its simulation went.

Everything here is pure numpy and cheap: the workflow calls :func:`shard_map_indices` while
it is parsed to know how many shard jobs to create.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from astroflow.maps.cmd import MAPS_PER_SIM

_FRACTION_TOLERANCE = 1e-6


def split_simulations(
    n_sims: int, fractions: Mapping[str, float], seed: int
) -> dict[str, np.ndarray]:
    """Assign simulation ids ``0..n_sims-1`` to named splits with a seeded permutation.

    Returns ``{split: sorted int64 ids}`` in the order of ``fractions``. Split sizes are the
    fractions of ``n_sims`` rounded by largest remainder (they always add up to ``n_sims``);
    a split that would round to zero simulations takes one from the largest split, so every
    split is non-empty. The assignment depends on the split names, not on the order in which
    the mapping lists them, so reordering a YAML config does not reshuffle the data.
    """
    names = _check_fractions(fractions)
    if n_sims < len(names):
        raise ValueError(
            f"cannot split {n_sims} simulation(s) into {len(names)} non-empty splits {names}"
        )
    canonical = sorted(names)
    counts = _split_counts(n_sims, [float(fractions[name]) for name in canonical])
    order = np.random.default_rng(seed).permutation(n_sims)
    bounds = np.concatenate(([0], np.cumsum(counts)))
    by_name = {
        name: np.sort(order[bounds[i] : bounds[i + 1]]).astype(np.int64)
        for i, name in enumerate(canonical)
    }
    return {name: by_name[name] for name in names}


def maps_of_sims(sim_ids: np.ndarray) -> np.ndarray:
    """Ascending raw-file map indices (int64) of all maps of the simulations ``sim_ids``."""
    sims = np.sort(np.asarray(sim_ids, dtype=np.int64))
    return (sims[:, None] * MAPS_PER_SIM + np.arange(MAPS_PER_SIM, dtype=np.int64)).ravel()


def shards_of_split(sim_ids: np.ndarray, maps_per_shard: int) -> list[np.ndarray]:
    """Cut the maps of the simulations ``sim_ids`` into balanced shards of sorted map indices.

    Map ``i`` of the raw files belongs to simulation ``i // MAPS_PER_SIM``. There are
    ``ceil(n_maps / maps_per_shard)`` shards whose sizes differ by at most one; indices are
    ascending within and across shards, so a shard reads the raw files front to back.
    """
    integral = isinstance(maps_per_shard, int | np.integer) and not isinstance(maps_per_shard, bool)
    if not integral or maps_per_shard < 1:
        raise ValueError(f"maps_per_shard must be a positive integer, got {maps_per_shard!r}")
    maps = maps_of_sims(sim_ids)
    if maps.size == 0:
        return []
    return np.array_split(maps, math.ceil(maps.size / int(maps_per_shard)))


def shard_map_indices(
    n_sims: int, fractions: Mapping[str, float], seed: int, maps_per_shard: int
) -> dict[str, list[np.ndarray]]:
    """Map indices (into the raw files) of every shard of every split: ``{split: [shard]}``.

    Same splits as :func:`split_simulations`, shards as :func:`shards_of_split`.
    """
    splits = split_simulations(n_sims, fractions, seed)
    return {name: shards_of_split(sims, maps_per_shard) for name, sims in splits.items()}


def _check_fractions(fractions: Mapping[str, float]) -> list[str]:
    names = list(fractions)
    if not names:
        raise ValueError("split fractions are empty: give at least one split, e.g. train")
    bad = {name: value for name, value in fractions.items() if not 0.0 < float(value) <= 1.0}
    if bad:
        raise ValueError(f"split fractions must be in (0, 1], got {bad} in {dict(fractions)}")
    total = math.fsum(float(value) for value in fractions.values())
    if abs(total - 1.0) > _FRACTION_TOLERANCE:
        raise ValueError(f"split fractions {dict(fractions)} sum to {total:g}, not 1")
    return names


def _split_counts(n_sims: int, fractions: list[float]) -> np.ndarray:
    """Largest-remainder rounding of ``fractions * n_sims``, then at least one per split."""
    exact = np.asarray(fractions) * n_sims
    counts = np.floor(exact).astype(np.int64)
    # Stable sort: ties in the remainder go to the earlier (alphabetical) split.
    by_remainder = np.argsort(-(exact - counts), kind="stable")
    counts[by_remainder[: n_sims - counts.sum()]] += 1
    for i in np.flatnonzero(counts == 0):
        counts[np.argmax(counts)] -= 1
        counts[i] = 1
    return counts
