"""Streamed maps copied from memory-mapped shards into a batch in one compiled pass.

A 64x64 map is 16 KiB, which memory copies in a fraction of a microsecond; assigning it to its
row from Python (index the shard, index the map, assign) costs more than the copy itself, and
made streamed small maps 10% slower than maps already in memory. Here a whole batch's copies
run in one numba loop, a block per run of consecutive channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, typed


class MappedShards:
    """The selected channels of memory-mapped shards, read into batches of maps.

    ``mapped[s]`` is shard s's ``maps`` (n_s, C_s, N, N) float32 as a memory map of its file,
    and ``runs[s]`` its (first output channel, count, first file channel) runs of the
    selection, as :func:`astroflow.maps.dataset._runs` gives them.
    """

    def __init__(
        self, mapped: Sequence[np.ndarray], runs: Sequence[Sequence[tuple[int, int, int]]]
    ) -> None:
        self.map_shape = (sum(n for _, n, _ in runs[0]), *mapped[0].shape[2:])
        pixels = int(np.prod(mapped[0].shape[2:]))
        self._sources = typed.List([maps.reshape(len(maps), -1) for maps in mapped])
        # Per shard and run: (output offset, source offset, length), in values of a map.
        self._runs = np.zeros((len(runs), max(len(r) for r in runs), 3), np.int64)
        self._run_count = np.array([len(r) for r in runs], np.int64)
        for s, shard_runs in enumerate(runs):
            for k, (first, n, channel) in enumerate(shard_runs):
                self._runs[s, k] = (first * pixels, channel * pixels, n * pixels)

    def read(self, shards: np.ndarray, local: np.ndarray) -> np.ndarray:
        """Maps (k, C, N, N) float32: map ``local[i]`` of shard ``shards[i]`` in row i (both
        int64 arrays)."""
        out = np.empty((len(shards), *self.map_shape), np.float32)
        rows = out.reshape(len(shards), -1)
        _copy_rows(self._sources, shards, local, self._runs, self._run_count, rows)
        return out


@njit(cache=True, nogil=True)
def _copy_rows(sources, shards, local, runs, run_count, out) -> None:
    """out[i, a : a + n] = sources[shards[i]][local[i], b : b + n] for each run (a, b, n) of
    shard shards[i]: the slices are indexed from 0, so LLVM turns each into a vector copy."""
    for i in range(shards.size):
        shard = shards[i]
        source = sources[shard][local[i]]
        row = out[i]
        for k in range(run_count[shard]):
            target = row[runs[shard, k, 0] : runs[shard, k, 0] + runs[shard, k, 2]]
            block = source[runs[shard, k, 1] : runs[shard, k, 1] + runs[shard, k, 2]]
            for j in range(target.size):
                target[j] = block[j]
