"""PyTorch view of cube shards: scaled PPV cubes and their scaled profile targets, in memory.

Cube datasets are small (a default shard of 32 cores is 8 MB of cubes and 8 MB of profiles),
so every shard is read once, scaled with the training statistics and kept as one array; the
engine's loaders then read whole batches (``dataset[keys]``) from memory, as for map shards.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from astroflow.batch import Batch
from astroflow.cubes.config import CoreConfig
from astroflow.cubes.scaling import CubeScaling, scale_cubes, scale_profiles
from astroflow.cubes.shards import CubeShard, CubeShardError, read_cube_shard
from astroflow.maps.dataset import D4_ORDER, dihedral


class CubeDataset(Dataset):
    """Cubes and profile targets of ``paths`` (file order), scaled with ``scaling``.

    An item is ``(x, y, core_id)``: ``x`` (nv, ny, nx) float32 scaled brightness, ``y``
    (2 nb, ny, nx) float32 scaled targets (log10 density bins, then velocity bins), and the
    core's running index in the dataset. A key ``(index, element)`` applies element ``element``
    of the dihedral group D4 to the sky axes of cube and targets together: rotating or mirroring
    the sky leaves every line of sight, and so its spectrum and profiles, unchanged.

    Whole-dataset arrays: ``targets`` (n, 2 nb, ny, nx), ``params`` (n, 13) generating
    parameters in physical units, ``core_ids`` (n,); ``config`` is the shards' shared
    :class:`~astroflow.cubes.config.CoreConfig`.
    """

    n_transforms = D4_ORDER
    """Elements of D4 an epoch plan may draw per cube (applied to the sky axes)."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        scaling: CubeScaling,
        shards: Sequence[CubeShard] | None = None,
    ) -> None:
        """``shards``: the contents of ``paths`` when the caller has read them already (and
        needs their unscaled arrays too), so that no file is read twice."""
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("CubeDataset needs at least one shard file")
        if shards is None:
            shards = [read_cube_shard(path) for path in self.paths]
        elif len(shards) != len(self.paths):
            raise ValueError(f"{len(shards)} shards given for {len(self.paths)} paths")
        for path, shard in zip(self.paths[1:], shards[1:], strict=True):
            if shard.config != shards[0].config:
                raise CubeShardError(
                    f"{path}: attribute 'config' differs from that of {self.paths[0]}; the "
                    "shards of one dataset must share one core configuration"
                )
        self.config: CoreConfig = shards[0].config
        self.scaling = scaling
        self.cubes = scale_cubes(np.concatenate([s.cubes for s in shards]), scaling)
        self.targets = scale_profiles(
            np.concatenate([s.density for s in shards]),
            np.concatenate([s.velocity for s in shards]),
            scaling,
        )
        self.params = np.concatenate([s.params for s in shards])
        self.core_ids = np.arange(len(self.cubes), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.cubes)

    def __getitem__(
        self, key: int | tuple[int, int] | list[int] | list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor, int] | Batch:
        if isinstance(key, list):
            batch = [self[k] for k in key]
            return Batch(
                torch.stack([item[0] for item in batch]),
                torch.stack([item[1] for item in batch]),
                torch.tensor([item[2] for item in batch], dtype=torch.int64),
            )
        index, element = key if isinstance(key, tuple) else (key, 0)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} cubes")
        index %= len(self)
        x = torch.from_numpy(self.cubes[index])
        y = torch.from_numpy(self.targets[index])
        if element:  # element 0 is the identity
            x, y = dihedral(x, element).contiguous(), dihedral(y, element).contiguous()
        return x, y, int(self.core_ids[index])

    def preload(self) -> None:
        """Nothing to do: the constructor reads every shard."""
