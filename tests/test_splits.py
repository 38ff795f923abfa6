"""Splits by simulation and shard map indices: no leaks, exact counts, determinism, speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from astroflow.maps.cmd import MAPS_PER_SIM
from astroflow.maps.splits import (
    maps_of_sims,
    shard_map_indices,
    shards_of_split,
    split_simulations,
)

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def test_every_simulation_lands_in_exactly_one_split() -> None:
    splits = split_simulations(1000, FRACTIONS, seed=3)
    together = np.concatenate(list(splits.values()))
    assert np.array_equal(np.sort(together), np.arange(1000))
    for ids in splits.values():
        assert ids.dtype == np.int64
        assert np.all(np.diff(ids) > 0)  # sorted, no repeats


def test_split_sizes_follow_the_fractions_exactly_when_they_can() -> None:
    splits = split_simulations(1000, FRACTIONS, seed=0)
    assert {name: ids.size for name, ids in splits.items()} == {
        "train": 800,
        "val": 100,
        "test": 100,
    }
    # 0.7/0.15/0.15 of 10 = 7, 1.5, 1.5: largest remainder gives one of the halves away.
    sizes = sorted(
        ids.size for ids in split_simulations(10, {"a": 0.7, "b": 0.15, "c": 0.15}, 1).values()
    )
    assert sizes == [1, 2, 7]


def test_tiny_splits_are_never_empty() -> None:
    splits = split_simulations(3, {"train": 0.98, "val": 0.01, "test": 0.01}, seed=0)
    assert [ids.size for ids in splits.values()] == [1, 1, 1]
    splits = split_simulations(20, {"train": 0.96, "val": 0.02, "test": 0.02}, seed=0)
    assert {name: ids.size for name, ids in splits.items()} == {"train": 18, "val": 1, "test": 1}


def test_splits_are_seeded_and_ignore_the_order_of_the_config() -> None:
    first = split_simulations(200, FRACTIONS, seed=7)
    again = split_simulations(200, FRACTIONS, seed=7)
    reordered = split_simulations(200, {"test": 0.1, "train": 0.8, "val": 0.1}, seed=7)
    other_seed = split_simulations(200, FRACTIONS, seed=8)
    for name in FRACTIONS:
        assert np.array_equal(first[name], again[name])
        assert np.array_equal(first[name], reordered[name])
    assert not np.array_equal(first["test"], other_seed["test"])
    assert list(reordered) == ["test", "train", "val"]


def test_the_split_is_a_random_draw_not_a_block_of_ids() -> None:
    test_ids = split_simulations(1000, FRACTIONS, seed=0)["test"]
    # A contiguous block would have a range of 100; a uniform draw spans nearly everything.
    assert test_ids.max() - test_ids.min() > 800
    assert 350 < test_ids.mean() < 650


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({"train": 0.8, "val": 0.1, "test": 0.2}, "sum to 1.1"),
        ({"train": 0.9, "val": 0.1, "test": 0.0}, "'test': 0.0"),
        ({"train": 1.2, "val": -0.2}, "in \\(0, 1\\]"),
        ({}, "empty"),
    ],
)
def test_bad_fractions_are_refused_by_name(fractions: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_simulations(100, fractions, seed=0)


def test_too_few_simulations_for_non_empty_splits() -> None:
    with pytest.raises(ValueError, match="2 simulation"):
        split_simulations(2, FRACTIONS, seed=0)


def test_maps_follow_their_simulation() -> None:
    maps = maps_of_sims(np.array([4, 1]))
    assert np.array_equal(maps, np.r_[15:30, 60:75])
    assert np.array_equal(np.unique(maps // MAPS_PER_SIM), [1, 4])


def test_shards_cover_each_split_once_without_leaking_simulations() -> None:
    n_sims, per_shard = 60, 100
    splits = split_simulations(n_sims, FRACTIONS, seed=11)
    shards = shard_map_indices(n_sims, FRACTIONS, seed=11, maps_per_shard=per_shard)
    seen = []
    for name, pieces in shards.items():
        n_maps = splits[name].size * MAPS_PER_SIM
        assert len(pieces) == math.ceil(n_maps / per_shard)
        sizes = [piece.size for piece in pieces]
        assert max(sizes) - min(sizes) <= 1 and max(sizes) <= per_shard
        joined = np.concatenate(pieces)
        assert np.all(np.diff(joined) > 0)  # ascending within and across shards
        assert np.array_equal(np.unique(joined // MAPS_PER_SIM), splits[name])
        seen.append(joined)
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(n_sims * MAPS_PER_SIM))


def test_shard_counts_are_ceilings_with_balanced_sizes() -> None:
    pieces = shards_of_split(np.arange(7), maps_per_shard=50)  # 105 maps -> 3 shards
    assert [piece.size for piece in pieces] == [35, 35, 35]
    pieces = shards_of_split(np.arange(2), maps_per_shard=30)  # exactly one full shard
    assert [piece.size for piece in pieces] == [30]
    assert shards_of_split(np.arange(2), maps_per_shard=1000)[0].size == 30


@pytest.mark.parametrize("bad", [0, -5, 2.5, True, "100"])
def test_maps_per_shard_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="maps_per_shard"):
        shards_of_split(np.arange(3), bad)  # type: ignore[arg-type]


def test_shard_indices_of_the_full_cmd_are_computed_in_milliseconds() -> None:
    # Called when the workflow is parsed: 1000 simulations, 15000 maps.
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        shards = shard_map_indices(1000, FRACTIONS, seed=0, maps_per_shard=500)
        best = min(best, time.perf_counter() - start)
    assert [len(shards[name]) for name in FRACTIONS] == [24, 3, 3]
    assert best < 0.05
