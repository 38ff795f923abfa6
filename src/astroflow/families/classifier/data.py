"""Classes of maps for the classifier family: each map against its phase-coupled counterpart
(``classes: phase``), or the maps of several CMD suites (``classes: suites``).

Phase classes: each map (class 0) and its counterpart (class 1), which shares the map's power
spectrum and pixel distribution.
Both items of a map come from its simulation's shard, so the classes never straddle splits.
A counterpart depends only on its map and the strength (:mod:`astroflow.maps.surrogates`):
the same whichever shard, batch or process builds it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from astroflow.batch import Batch
from astroflow.maps.dataset import D4_ORDER, ShardDataset, dihedral
from astroflow.maps.surrogates import counterparts

PHASE_CLASSES: tuple[str, ...] = ("map", "phase-coupled")
"""Class 0: the map as simulated; class 1: its counterpart of the same P(k) and PDF."""

BOX_UNITS = 1.0
"""Box side given to the baseline's power spectra: it standardizes its features, so the box
size (a constant factor on P and on k) changes nothing, and shards do not record it."""


class PhaseClassDataset(Dataset):
    """Maps of ``fields`` from ``paths`` and their counterparts of ``strength``, in memory.

    Item ``i < n`` is map ``i`` with label 0, item ``n + i`` its counterpart with label 1. An
    item is ``(x, label, sim_id)``: ``x`` (C, N, N) float32 standardized log10 fields, the
    label an int64. A key ``(index, element)`` applies element ``element`` of D4 to the map.
    Whole-dataset arrays: ``targets`` (2n,) labels, ``sim_ids``, ``map_index`` and
    ``params_raw`` (2n, 6) of the simulation each item comes from.
    """

    n_transforms = D4_ORDER
    class_names = PHASE_CLASSES

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        fields: Sequence[str],
        strength: float,
    ) -> None:
        shards = ShardDataset(paths, fields, [], in_memory=True)
        shards.preload()
        maps = shards[list(range(len(shards)))].x.numpy()
        self.maps = np.concatenate([maps, counterparts(maps, strength)]).astype(np.float32)
        n = len(maps)
        self.targets = np.repeat(np.arange(2, dtype=np.int64), n)
        self.sim_ids = np.tile(shards.sim_ids, 2)
        self.map_index = np.tile(shards.map_index, 2)
        self.params_raw = np.tile(shards.params_raw, (2, 1))
        self.param_names = list(shards.param_names)
        self.map_size = shards.map_size
        self.field_mean, self.field_std = shards.field_mean, shards.field_std
        self.paths = shards.paths
        shards.close()

    def __len__(self) -> int:
        return len(self.maps)

    def __getitem__(self, key: int | tuple[int, int] | list) -> tuple | Batch:
        if isinstance(key, list):
            items = [self[k] for k in key]
            return Batch(
                torch.stack([item[0] for item in items]),
                torch.tensor([item[1] for item in items], dtype=torch.int64),
                torch.tensor([item[2] for item in items], dtype=torch.int64),
            )
        index, element = key if isinstance(key, tuple) else (key, 0)
        x = torch.from_numpy(self.maps[index])
        if element:  # element 0 is the identity
            x = dihedral(x, element).contiguous()
        return x, int(self.targets[index]), int(self.sim_ids[index])

    def preload(self) -> None:
        """Nothing to do: the constructor builds both classes in memory."""


class SuiteClassDataset(Dataset):
    """Maps of ``fields`` from the shards of several CMD suites, labelled by suite.

    ``paths`` hold the shards of every suite (their ``suite`` attribute says which); item
    ``i`` has the label of its suite's position in ``suites``. Each suite's shards are
    standardized with that suite's training statistics; here every map is brought to the first
    suite's, so that a field's overall level, which differs between suites, stays visible. Items,
    keys and whole-dataset arrays are those of :class:`PhaseClassDataset`.
    """

    n_transforms = D4_ORDER

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], fields: Sequence[str], suites: Sequence[str]
    ) -> None:
        self.class_names = tuple(suites)
        by_suite: dict[str, list] = {suite: [] for suite in suites}
        for path in paths:
            suite = shard_suite(path)
            if suite not in by_suite:
                raise ValueError(
                    f"{path}: suite {suite!r} is not one of the classes {list(suites)}"
                )
            by_suite[suite].append(path)
        parts = []
        for label, suite in enumerate(suites):
            if not by_suite[suite]:
                raise ValueError(f"no shard of suite {suite!r} among {len(paths)} shard files")
            parts.append((label, ShardDataset(by_suite[suite], fields, [], in_memory=True)))
        reference = parts[0][1]
        maps, labels = [], []
        for label, shards in parts:
            x = shards[list(range(len(shards)))].x.numpy().astype(np.float64)
            scale = (shards.field_std / reference.field_std)[None, :, None, None]
            shift = ((shards.field_mean - reference.field_mean) / reference.field_std)[
                None, :, None, None
            ]
            maps.append((x * scale + shift).astype(np.float32))
            labels.append(np.full(len(shards), label, dtype=np.int64))
        self.maps = np.concatenate(maps)
        self.targets = np.concatenate(labels)
        self.sim_ids = np.concatenate([shards.sim_ids for _, shards in parts])
        self.map_index = np.concatenate([shards.map_index for _, shards in parts])
        self.params_raw = np.concatenate([shards.params_raw for _, shards in parts])
        self.param_names = list(reference.param_names)
        self.map_size = reference.map_size
        self.field_mean, self.field_std = reference.field_mean, reference.field_std
        self.paths = [path for _, shards in parts for path in shards.paths]
        for _, shards in parts:
            shards.close()

    def __len__(self) -> int:
        return len(self.maps)

    __getitem__ = PhaseClassDataset.__getitem__

    def preload(self) -> None:
        """Nothing to do: the constructor reads every shard."""


def shard_suite(path: str | os.PathLike[str]) -> str:
    """The CMD suite a map shard was made from (its ``suite`` attribute)."""
    with h5py.File(path, "r") as h5:
        if "suite" not in h5.attrs:
            raise ValueError(f"{path}: attribute 'suite' missing")
        value = h5.attrs["suite"]
    return value.decode() if isinstance(value, bytes) else str(value)


ClassDataset = PhaseClassDataset | SuiteClassDataset


def class_dataset(
    paths: Sequence[str | os.PathLike[str]], settings: Mapping[str, Any]
) -> ClassDataset:
    """The two (or more) classes an experiment's ``classes`` setting asks for."""
    if settings["classes"] == "suites":
        return SuiteClassDataset(paths, settings["fields"], settings["suites"])
    return PhaseClassDataset(paths, settings["fields"], settings["strength"])
