"""Positive pairs of maps for VICReg, drawn as a pure function of the epoch plan.

Two kinds, by the ``pairs`` setting:

- ``simulation``: a map and another map of the same simulation, each with its own element of
  D4 and its own periodic shift. What the two share is the simulation's parameters, so what
  the loss makes invariant is everything else (the realization, the orientation, the
  position).
- ``fields``: one map seen in two fields (the first two of ``fields``), with one D4 element
  and one shift applied to both, so the views stay aligned pixel by pixel. What they share is
  the patch of sky; the encoder must find it in both fields.

No augmentation rescales a map or crops it: the physical scale of a pixel is information.

The engine's epoch plan gives every item a key ``(index, draw)``; the partner, the elements
and the shifts are drawn from a generator seeded by that key alone, so a resumed run sees
the same pairs whoever loads them. Validation asks for plain indices and gets the pairs of a
fixed draw, the same every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from astroflow.batch import Batch
from astroflow.engine.rng import derive_seed
from astroflow.maps.dataset import D4_ORDER, ShardDataset, dihedral

PAIR_KINDS: tuple[str, ...] = ("simulation", "fields")

DRAWS = 1 << 30
"""Distinct draws per item the epoch plan chooses from: partner, elements and shifts are a
function of (index, draw)."""

_VALIDATION_DRAW = 0x7A11D
"""The draw of every validation pair (fixed, so the validation loss compares epochs)."""


def view(x: torch.Tensor, element: int, shift: tuple[int, int]) -> torch.Tensor:
    """Element ``element`` of D4, then a periodic shift (dy, dx), of maps (..., N, N)."""
    return torch.roll(dihedral(x, element), shifts=shift, dims=(-2, -1))


class PairDataset:
    """Pairs of views of the maps of ``paths``: ``dataset[keys]`` is a :class:`Batch` with
    ``x`` (B, 2, C', N, N), the two views of each pair stacked on axis 1 (C' = C for
    ``simulation`` pairs, 1 for ``fields``: view 0 is ``fields[0]``, view 1 ``fields[1]``),
    ``y`` the scaled parameters of the first map, ``sim_id`` its simulation.
    """

    n_transforms = DRAWS

    def __init__(
        self,
        paths: Sequence[str],
        fields: Sequence[str],
        params: Sequence[str],
        pairs: str,
    ) -> None:
        if pairs not in PAIR_KINDS:
            raise ValueError(f"pairs must be one of {PAIR_KINDS}, got {pairs!r}")
        if pairs == "fields" and len(fields) != 2:
            raise ValueError(f"pairs: fields needs exactly two fields, got {list(fields)}")
        self.maps = ShardDataset(paths, fields, params, in_memory=True)
        self.pairs = pairs
        self.map_size = self.maps.map_size
        self.targets = self.maps.targets
        self._members = _members_by_sim(self.maps.sim_ids)
        if pairs == "simulation":
            lonely = [s for s, m in self._members.items() if len(m) < 2]
            if lonely:
                raise ValueError(
                    f"{self.maps.paths[0]}: simulations {lonely[:5]} have one map only; "
                    "pairs: simulation needs two maps of every simulation"
                )

    def __len__(self) -> int:
        return len(self.maps)

    def preload(self) -> None:
        self.maps.preload()

    def pair(
        self, index: int, draw: int
    ) -> tuple[int, int, int, int, tuple[int, int], tuple[int, int]]:
        """The pair of one key: maps ``i``, ``j``, their D4 elements ``e1``, ``e2`` and periodic
        shifts ``s1``, ``s2`` (dy, dx); for ``fields`` pairs j = i, e2 = e1, s2 = s1."""
        rng = np.random.default_rng(derive_seed(index, draw))
        n = self.map_size
        e1, e2 = (int(e) for e in rng.integers(0, D4_ORDER, 2))
        s1, s2 = ((int(a), int(b)) for a, b in rng.integers(0, n, (2, 2)))
        if self.pairs == "fields":
            return index, index, e1, e1, s1, s1
        members = self._members[int(self.maps.sim_ids[index])]
        others = members[members != index]
        j = int(others[rng.integers(len(others))])
        return index, j, e1, e2, s1, s2

    def __getitem__(self, keys: list[int] | list[tuple[int, int]]) -> Batch:
        if not isinstance(keys, list):
            raise TypeError("PairDataset is read by batches: dataset[list_of_keys]")
        keys = [k if isinstance(k, tuple) else (k, _VALIDATION_DRAW) for k in keys]
        drawn = [self.pair(int(i), int(d)) for i, d in keys]
        maps = self.maps[[i for i, *_ in drawn] + [j for _, j, *_ in drawn]].x
        first, second = maps[: len(keys)], maps[len(keys) :]
        views = []
        for row, (_, _, e1, e2, s1, s2) in enumerate(drawn):
            a, b = view(first[row], e1, s1), view(second[row], e2, s2)
            if self.pairs == "fields":
                a, b = a[:1], b[1:2]
            views.append(torch.stack([a, b]))
        index = np.array([i for i, *_ in drawn])
        return Batch(
            torch.stack(views).contiguous(),
            torch.from_numpy(self.maps.targets[index]),
            torch.from_numpy(self.maps.sim_ids[index]),
        )


def _members_by_sim(sim_ids: np.ndarray) -> dict[int, np.ndarray]:
    """Row indices of every simulation's maps."""
    order = np.argsort(sim_ids, kind="stable")
    sims, starts = np.unique(sim_ids[order], return_index=True)
    return {
        int(s): order[a:b] for s, a, b in zip(sims, starts, [*starts[1:], len(order)], strict=True)
    }
