"""PyTorch view of volume shards: random periodic crops of scaled pairs, augmented by the cube's
48 symmetries.

Volumes are few and small (a 64³ pair of four channels is 4.5 MB), so every shard is read and
scaled once. A training item is a crop: the low-resolution input ``crop`` voxels on a side plus
``pad`` voxels of periodic padding around it (what the generator's valid convolutions consume),
and the high-resolution target of the same region (``factor * crop`` voxels). Which crop and
which symmetry an item gets is the element the engine's epoch plan draws (a pure function of
seed and epoch), so a resumed run sees the same crops. With ``spectral``, the target also
carries the same crop of the spectral interpolation of the whole periodic input (a skip path
that a crop alone cannot compute).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from astroflow.batch import Batch
from astroflow.volumes.resample import spectral_upsample
from astroflow.volumes.scaling import VolumeScaling
from astroflow.volumes.shards import VolumeShard, VolumeShardError, read_volume_shard
from astroflow.volumes.symmetry import N_SYMMETRIES, apply_symmetry


def periodic_crop(volume: np.ndarray, origin: Sequence[int], size: int, pad: int) -> np.ndarray:
    """Voxels ``origin - pad`` to ``origin + size + pad`` of each axis of ``volume`` (C, D, H, W),
    wrapped around the periodic box."""
    index = [
        (o - pad + np.arange(size + 2 * pad)) % n
        for o, n in zip(origin, volume.shape[1:], strict=True)
    ]
    return volume[np.ix_(np.arange(volume.shape[0]), *index)]


def read_shards(paths: Sequence[str | os.PathLike[str]]) -> list[VolumeShard]:
    """The shards of one dataset; they must share channels, units, factor and box."""
    if not paths:
        raise ValueError("a volume dataset needs at least one shard file")
    shards = [read_volume_shard(p) for p in paths]
    for path, shard in zip(paths[1:], shards[1:], strict=True):
        if shard.layout() != shards[0].layout() or shard.hr.shape[1:] != shards[0].hr.shape[1:]:
            raise VolumeShardError(
                f"{path}: channels, units, factor, box or volume shape differ from {paths[0]}"
            )
    return shards


class VolumeDataset(Dataset):
    """Crops of the pairs in ``shards`` (file order), scaled with ``scaling``.

    ``crops_per_volume`` items per pair make one epoch. With ``augment``, a key is
    ``(index, element)``: ``element // M³`` is the cube symmetry, ``element % M³`` the crop
    origin (a low-resolution voxel); a plain index is the crop at the origin, unaugmented.
    Whole volumes stay available as ``lr`` and ``hr`` (scaled, float32). With ``spectral``,
    ``skip`` holds the :func:`~astroflow.volumes.resample.spectral_upsample` of every scaled
    input volume, and a target has 2C channels: the truth, then the skip.
    """

    def __init__(
        self,
        shards: Sequence[VolumeShard],
        scaling: VolumeScaling,
        *,
        crop: int,
        pad: int,
        crops_per_volume: int = 1,
        augment: bool = True,
        spectral: bool = False,
    ) -> None:
        first = shards[0]
        self.channels, self.units = first.channels, first.units
        self.vector = first.vector_channels
        self.factor, self.box_size = first.factor, first.box_size
        self.scaling = scaling
        self.lr = scaling.forward(np.concatenate([s.lr for s in shards]))
        self.hr = scaling.forward(np.concatenate([s.hr for s in shards]))
        self.coarse = self.lr.shape[-1]
        self.skip = (
            np.stack([spectral_upsample(v, self.factor) for v in self.lr]) if spectral else None
        )
        if not 1 <= crop <= self.coarse:
            raise ValueError(f"crop {crop} must be in [1, {self.coarse}] low-resolution voxels")
        self.crop, self.pad = crop, pad
        self.crops_per_volume = crops_per_volume
        self.n_transforms = N_SYMMETRIES * self.coarse**3 if augment else 1
        self.targets = np.zeros((len(self), 0), np.float32)  # no per-item targets

    def __len__(self) -> int:
        return len(self.lr) * self.crops_per_volume

    def item(self, index: int, element: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Input (C, crop + 2 pad, ...) and target (C, factor crop, ...) of one crop (2C
        channels with the skip)."""
        volume = index % len(self.lr)
        symmetry, position = divmod(element, self.coarse**3)
        origin = np.unravel_index(position, (self.coarse,) * 3)
        x = periodic_crop(self.lr[volume], origin, self.crop, self.pad)
        f = self.factor
        fields = [self.hr] if self.skip is None else [self.hr, self.skip]
        y = [periodic_crop(v[volume], [f * o for o in origin], f * self.crop, 0) for v in fields]
        x = apply_symmetry(torch.from_numpy(x), symmetry, self.vector)
        y = [apply_symmetry(torch.from_numpy(v), symmetry, self.vector) for v in y]
        return x, torch.cat(y)

    def __getitem__(self, keys: list[int] | list[tuple[int, int]]) -> Batch:
        pairs = [k if isinstance(k, tuple) else (k, 0) for k in keys]
        for index, _ in pairs:
            if not 0 <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} crops")
        items = [self.item(i, e) for i, e in pairs]
        return Batch(
            torch.stack([x for x, _ in items]),
            torch.stack([y for _, y in items]),
            torch.tensor([i % len(self.lr) for i, _ in pairs], dtype=torch.int64),
        )

    def preload(self) -> None:
        """Nothing to do: the constructor reads every shard."""
