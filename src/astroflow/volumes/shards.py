"""HDF5 shards of paired volumes, the layout users' own low/high-resolution pairs follow too.

Layout of a shard of ``n`` pairs, ``C`` channels, high-resolution side ``N`` and
low-resolution side ``M = N / factor`` (axes (z, y, x), cell-centred grids, coarse cell i
covering fine cells ``factor i ... factor i + factor - 1``, both periodic):

- ``lr`` (n, C, M, M, M) float32: the low-resolution volumes (network input);
- ``hr`` (n, C, N, N, N) float32: the high-resolution volumes (the truth);
- ``seeds`` (n,) int64: the seed of each synthetic pair (-1 for pairs of other origin).

File attributes: ``format_version``, ``channels`` (names), ``units`` (one per channel),
``vector_channels`` (the channel of the vector component along each axis z, y, x, or [] if
no channel is a vector), ``box_size`` (Mpc/h), ``factor``, ``generator`` (JSON of the
generating parameters, ``{}`` for other data). Density-like channels, which are log-scaled
for training, are named ``density`` or end in ``_density``: they must be positive.

``.npy`` pairs (one array of shape (C, M, M, M) and one of (C, N, N, N) per pair) become a
shard with :func:`pack_npy_pairs`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from astroflow.io import atomic_path
from astroflow.volumes.settings import VolumeConfig
from astroflow.volumes.synthetic import CHANNELS, UNITS, VECTOR_CHANNELS, synthesize_pair

FORMAT_VERSION = 1
SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


class VolumeShardError(ValueError):
    """A volume shard cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class VolumeShard:
    """The arrays and attributes of one shard (see the module docstring)."""

    lr: np.ndarray
    hr: np.ndarray
    seeds: np.ndarray
    channels: tuple[str, ...]
    units: tuple[str, ...]
    vector_channels: tuple[int, ...]
    box_size: float
    factor: int
    generator: dict[str, Any]

    def layout(self) -> dict[str, Any]:
        """What must agree between the shards of one dataset."""
        return {
            "channels": self.channels,
            "units": self.units,
            "vector_channels": self.vector_channels,
            "factor": self.factor,
            "box_size": self.box_size,
        }


def pair_seed(seed: int, split: str, shard: int, index: int) -> int:
    """Seed of one synthetic pair: distinct for every (split, shard, index) of a config seed."""
    sequence = np.random.SeedSequence([seed, SPLIT_INDEX[split], shard, index])
    return int(sequence.generate_state(1, np.uint32)[0])


def write_volume_shard(
    settings: Mapping[str, Any],
    split: str,
    shard: int,
    volumes_per_shard: int,
    seed: int,
    out: str | os.PathLike[str],
) -> Path:
    """Synthesise ``volumes_per_shard`` pairs of :class:`VolumeConfig` ``settings`` and write
    them to ``out`` (atomically); the same arguments give the same arrays."""
    config = VolumeConfig(**settings)
    seeds = [pair_seed(seed, split, shard, i) for i in range(volumes_per_shard)]
    pairs = [synthesize_pair(config, s) for s in seeds]
    return write_pairs(
        out,
        np.stack([p[0] for p in pairs]),
        np.stack([p[1] for p in pairs]),
        channels=CHANNELS,
        units=UNITS,
        vector_channels=VECTOR_CHANNELS,
        box_size=config.box_size,
        seeds=np.asarray(seeds, np.int64),
        generator={**config.to_dict(), "seed": seed, "split": split, "shard": shard},
    )


def write_pairs(
    out: str | os.PathLike[str],
    lr: np.ndarray,
    hr: np.ndarray,
    *,
    channels: Sequence[str],
    units: Sequence[str],
    vector_channels: Sequence[int] = (),
    box_size: float,
    seeds: np.ndarray | None = None,
    generator: Mapping[str, Any] | None = None,
) -> Path:
    """Write pairs ``lr`` (n, C, M, M, M) and ``hr`` (n, C, N, N, N) as a shard, checked first."""
    lr, hr = np.asarray(lr, np.float32), np.asarray(hr, np.float32)
    factor = _check_pairs(str(out), lr, hr, channels, units, vector_channels)
    if seeds is None:
        seeds = np.full(len(lr), -1, np.int64)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("lr", data=lr, chunks=(1, *lr.shape[1:]))
        f.create_dataset("hr", data=hr, chunks=(1, *hr.shape[1:]))
        f.create_dataset("seeds", data=seeds)
        f.attrs.update(
            format_version=FORMAT_VERSION,
            channels=list(channels),
            units=list(units),
            vector_channels=np.asarray(vector_channels, np.int64),
            box_size=float(box_size),
            factor=factor,
            generator=json.dumps(dict(generator or {}), sort_keys=True),
        )
    return Path(out)


def _check_pairs(
    where: str,
    lr: np.ndarray,
    hr: np.ndarray,
    channels: Sequence[str],
    units: Sequence[str],
    vector_channels: Sequence[int],
) -> int:
    """The factor of valid pairs; a shape or attribute that does not fit is an error."""
    if lr.ndim != 5 or hr.ndim != 5 or len(lr) != len(hr) or lr.shape[1] != hr.shape[1]:
        raise VolumeShardError(
            f"{where}: 'lr' {lr.shape} and 'hr' {hr.shape} must be (n, C, M, M, M) and "
            "(n, C, N, N, N) with the same n and C"
        )
    m, n = lr.shape[2:], hr.shape[2:]
    if len(set(m)) != 1 or len(set(n)) != 1 or n[0] % m[0] or n[0] // m[0] not in (2, 4):
        raise VolumeShardError(
            f"{where}: volumes must be cubes with N = 2 M or 4 M, got lr {m} and hr {n}"
        )
    if len(channels) != lr.shape[1] or len(units) != lr.shape[1]:
        raise VolumeShardError(
            f"{where}: {lr.shape[1]} channels but {len(channels)} names, {len(units)} units"
        )
    if vector_channels and (
        len(vector_channels) != 3 or not all(0 <= c < lr.shape[1] for c in vector_channels)
    ):
        raise VolumeShardError(
            f"{where}: 'vector_channels' {list(vector_channels)} must name 3 of the "
            f"{lr.shape[1]} channels"
        )
    for c, name in enumerate(channels):
        if is_density(name) and (np.any(lr[:, c] <= 0) or np.any(hr[:, c] <= 0)):
            raise VolumeShardError(f"{where}: channel {name!r} is a density with values <= 0")
    if not (np.all(np.isfinite(lr)) and np.all(np.isfinite(hr))):
        raise VolumeShardError(f"{where}: 'lr' or 'hr' holds NaN or infinite values")
    return n[0] // m[0]


def is_density(channel: str) -> bool:
    """Whether a channel is log-scaled for training (named density or ``*_density``)."""
    return channel == "density" or channel.endswith("_density")


def read_volume_shard(path: str | os.PathLike[str]) -> VolumeShard:
    """Read a shard whole; a missing key or a bad shape raises an error naming file and key."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            for key in ("lr", "hr", "seeds"):
                if key not in f:
                    raise VolumeShardError(f"{path}: dataset '{key}' missing")
            for key in ("channels", "units", "vector_channels", "box_size", "factor"):
                if key not in f.attrs:
                    raise VolumeShardError(f"{path}: attribute '{key}' missing")
            shard = VolumeShard(
                lr=f["lr"][...],
                hr=f["hr"][...],
                seeds=f["seeds"][...],
                channels=tuple(_strings(f.attrs["channels"])),
                units=tuple(_strings(f.attrs["units"])),
                vector_channels=tuple(int(c) for c in np.atleast_1d(f.attrs["vector_channels"])),
                box_size=float(f.attrs["box_size"]),
                factor=int(f.attrs["factor"]),
                generator=json.loads(f.attrs.get("generator", "{}")),
            )
    except OSError as err:
        raise VolumeShardError(f"{path}: not a readable HDF5 file ({err})") from None
    factor = _check_pairs(
        str(path), shard.lr, shard.hr, shard.channels, shard.units, shard.vector_channels
    )
    if factor != shard.factor:
        raise VolumeShardError(f"{path}: attribute 'factor' {shard.factor}, shapes say {factor}")
    return shard


def _strings(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values)]


def pack_npy_pairs(
    pairs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    out: str | os.PathLike[str],
    *,
    channels: Sequence[str],
    units: Sequence[str],
    vector_channels: Sequence[int] = (),
    box_size: float,
) -> Path:
    """Write ``.npy`` pairs ``[(lr.npy, hr.npy), ...]`` (each (C, M, M, M) and (C, N, N, N)) as
    one shard; the arrays load without pickle, and a pair that does not fit names its files."""
    lows, highs = [], []
    for lr_path, hr_path in pairs:
        lr = np.load(lr_path, allow_pickle=False)
        hr = np.load(hr_path, allow_pickle=False)
        _check_pairs(f"{lr_path} / {hr_path}", lr[None], hr[None], channels, units, vector_channels)
        lows.append(lr)
        highs.append(hr)
    return write_pairs(
        out,
        np.stack(lows),
        np.stack(highs),
        channels=channels,
        units=units,
        vector_channels=vector_channels,
        box_size=box_size,
    )
