"""PyTorch view of HDF5 shards: maps of the chosen fields, scaled parameters, simulation ids.

Each process (the main one and every DataLoader worker) opens its own h5py handles on first
use: an HDF5 handle inherited across ``fork`` shares file state with the parent and corrupts
reads. The constructor reads only attributes and the small per-map arrays, then closes the
files, so no handle exists when the loader forks its workers.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from astroflow.batch import Batch
from astroflow.io import string_attr
from astroflow.maps import cmd

if TYPE_CHECKING:
    from astroflow.maps.gather import MappedShards

IN_MEMORY_BYTES = 1 << 30
"""Selected maps up to this size (per process) are read once per shard and kept in memory."""

D4_ORDER = 8
"""Number of elements of the dihedral group of the square: 4 rotations, each with or
without a mirror."""

_REQUIRED_DATASETS = ("maps", "params", "params_raw", "sim_id", "map_index")
_REQUIRED_ATTRS = ("fields", "param_names", "mean", "std")


class ShardFormatError(ValueError):
    """A shard lacks something a reader asked for; the message names the file and the key."""


def dihedral(x: torch.Tensor, element: int) -> torch.Tensor:
    """Apply element ``element`` (0..7) of the group D4 to the last two axes of ``x``.

    Elements 0-3 rotate by ``element`` quarter turns, 4-7 transpose and then rotate. The
    statistics of a periodic, isotropic field are invariant under D4, so every element is a
    valid new sample with the same parameters. All channels get the same transform.
    """
    if not 0 <= element < D4_ORDER:
        raise ValueError(f"D4 element must be in 0..{D4_ORDER - 1}, got {element}")
    if element >= 4:
        x = x.transpose(-2, -1)
    return torch.rot90(x, element % 4, dims=(-2, -1))


class ShardDataset(Dataset):
    """Maps of ``fields`` and scaled parameters ``params`` from shard files, in file order.

    An item is ``(x, y, sim_id)``: ``x`` float32 (C, N, N) with channels in the order of
    ``fields`` (selected by name from each shard's ``fields`` attribute), ``y`` float32 (P,)
    min-max scaled parameters in the order of ``params``, ``sim_id`` int.

    With ``augment=True`` each item gets a D4 element. Training passes it in the key:
    ``dataset[(index, element)]``, planned by :class:`astroflow.engine.batches.PlanSampler`
    from seed and epoch, so the augmentation of a map never depends on which worker loads it
    (a resumed run sees the same maps). A plain ``dataset[index]`` draws the element from a
    per-process torch generator seeded from ``torch.initial_seed()``: in a DataLoader worker
    that is the worker seed the loader derives from its own generator, in the main process the
    global seed, so a seeded run is reproducible either way. An explicit element is applied
    whatever ``augment`` says.

    ``in_memory=None`` keeps the selected maps of all shards in memory (one array, read on
    first use or by :meth:`preload`) when their total is below :data:`IN_MEMORY_BYTES`, and
    otherwise streams them map by map: an uncompressed shard (contiguous ``maps``) is mapped
    into memory and each map copied from the mapping straight into its row of the batch (the
    operating system pages the file in and out, so no copy is held), a compressed one is read
    through h5py (one map per HDF5 chunk, so a single-map read touches only that map).
    ``dataset[list_of_keys]`` returns a whole :class:`Batch` at once, which is how the engine's
    loaders read (:mod:`astroflow.engine.batches`).

    Whole-dataset arrays are available without reading maps: ``targets`` (n, P) scaled,
    ``params_raw`` (n, 6) physical, ``sim_ids`` (n,), ``map_index`` (n,), and the per-field
    normalization ``field_mean``/``field_std`` (C,) of the shards.
    """

    n_transforms = D4_ORDER
    """Elements of the symmetry group an epoch plan may draw per item (D4 of the square)."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        fields: Sequence[str],
        params: Sequence[str],
        augment: bool = False,
        *,
        in_memory: bool | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("ShardDataset needs at least one shard file")
        self.fields = list(fields)
        self.params = list(params)
        self.augment = augment

        infos = [_read_shard_info(path, self.fields, self.params) for path in self.paths]
        _check_consistent(self.paths, infos, self.fields)
        self.map_size: int = infos[0]["map_size"]
        self.param_names: list[str] = infos[0]["param_names"]
        self.field_mean: np.ndarray = infos[0]["mean"]
        self.field_std: np.ndarray = infos[0]["std"]
        # Per shard: indices into its axis 1 (its own field order), in the order of `fields`.
        self._channels = [info["channels"] for info in infos]
        self._offsets = np.cumsum([0] + [len(info["sim_id"]) for info in infos])
        self.targets = np.concatenate([info["targets"] for info in infos])
        self.params_raw = np.concatenate([info["params_raw"] for info in infos])
        self.sim_ids = np.concatenate([info["sim_id"] for info in infos])
        self.map_index = np.concatenate([info["map_index"] for info in infos])

        n_bytes = len(self) * len(self.fields) * self.map_size**2 * 4
        self.in_memory = n_bytes <= IN_MEMORY_BYTES if in_memory is None else in_memory
        self._memory: np.ndarray | None = None
        self._reset_process_state()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(
        self, key: int | tuple[int, int] | list[int] | list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor, int] | Batch:
        if isinstance(key, list):
            return self._batch(key)
        index, element = key if isinstance(key, tuple) else (key, None)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} maps")
        index %= len(self)
        self._ensure_process_state()
        if self.in_memory:
            x = torch.from_numpy(self._all_maps()[index])
        else:
            shard = int(np.searchsorted(self._offsets, index, side="right")) - 1
            local = np.array([index - self._offsets[shard]])
            x = torch.from_numpy(self._read_maps(np.array([shard]), local)[0])
        if element is None and self.augment:
            element = int(torch.randint(D4_ORDER, (1,), generator=self._generator()))
        if element:  # element 0 is the identity
            x = dihedral(x, element).contiguous()
        y = torch.from_numpy(self.targets[index])
        return x, y, int(self.sim_ids[index])

    def _batch(self, keys: list[int] | list[tuple[int, int]]) -> Batch:
        """The items of ``keys`` (as for ``dataset[key]``) read together as one :class:`Batch`.

        The maps land in one array (no per-item tensors to stack), taken from memory or,
        streaming, read map by map into their rows, in the order of ``keys``.
        """
        planned = bool(keys) and isinstance(keys[0], tuple)
        index = np.array([key[0] for key in keys] if planned else keys, dtype=np.int64)
        outside = (index < -len(self)) | (index >= len(self))
        if outside.any():
            raise IndexError(f"index {index[outside][0]} out of range for {len(self)} maps")
        index %= len(self)
        self._ensure_process_state()
        if self.in_memory:
            x = self._all_maps()[index]
        else:
            shard_of = np.searchsorted(self._offsets, index, side="right") - 1
            x = self._read_maps(shard_of, index - self._offsets[shard_of])
        maps = torch.from_numpy(x)
        if planned:
            elements = [key[1] for key in keys]
        elif self.augment:
            elements = torch.randint(D4_ORDER, (len(keys),), generator=self._generator()).tolist()
        else:
            elements = []
        for row, element in enumerate(elements):
            if element:  # element 0 is the identity
                maps[row] = dihedral(maps[row], element)
        y = torch.from_numpy(self.targets[index])
        return Batch(maps, y, torch.from_numpy(self.sim_ids[index]))

    def preload(self) -> None:
        """Read all selected maps into memory now (``in_memory`` datasets only).

        Called before a DataLoader forks its workers, they share this one copy
        (copy-on-write pages) instead of each reading and holding its own.
        """
        if self.in_memory:
            self._all_maps()

    def _all_maps(self) -> np.ndarray:
        """Selected maps of all shards (n, C, N, N) float32, read on first use."""
        if self._memory is None:
            size, n_fields = self.map_size, len(self.fields)
            memory = np.empty((len(self), n_fields, size, size), np.float32)
            for shard, (lo, hi) in enumerate(itertools.pairwise(self._offsets.tolist())):
                maps = self._maps(shard)
                for c, channel in enumerate(self._channels[shard]):
                    memory[lo:hi, c] = maps[:, channel]
            self._memory = memory
            self._close_handles()  # not needed any more, and no handle may reach a worker
        return self._memory

    def _read_maps(self, shards: np.ndarray, local: np.ndarray) -> np.ndarray:
        """Selected channels (k, C, N, N) float32 of map ``local[k]`` of shard ``shards[k]``.

        From the file mappings when every shard has one: each map copied straight into its
        row by one compiled loop per batch (:mod:`astroflow.maps.gather`). Gathering a
        shard's maps into a temporary and copying that into the batch made streamed 256x256
        maps a quarter slower than maps from memory; a positioned read (``os.preadv``) took
        half again as long as a copy for 64x64 maps, and a Python assignment per row cost
        more than its copy. Otherwise one h5py read per map and channel: h5py's list indexing
        (maps[[i, j, ...]]) builds a point selection that was 30x slower than these reads for
        32 maps.
        """
        mapped = self._mapped_shards()
        if mapped is not None:
            return mapped.read(shards, local)
        out = np.empty((len(local), len(self.fields), self.map_size, self.map_size), np.float32)
        for row, (shard, i) in enumerate(zip(shards, local, strict=True)):
            maps = self._maps(shard)
            for c, channel in enumerate(self._channels[shard]):
                out[row, c] = maps[i, channel]
        return out

    def _mapped_shards(self) -> MappedShards | None:
        """Every shard's selection over its file mapping, or None if a shard has none."""
        if self._mapped is None:
            mappings = [self._mapping(shard) for shard in range(len(self.paths))]
            if any(mapping is None for mapping in mappings):
                self._mapped = False
            else:
                # Compiled (numba): imported by streaming datasets only, not by every job.
                from astroflow.maps.gather import MappedShards

                runs = [_runs(channels) for channels in self._channels]
                self._mapped = MappedShards(mappings, runs)
                self._close_handles()  # each mapping holds its file: one descriptor per shard
        return self._mapped or None

    def _mapping(self, shard: int) -> np.ndarray | None:
        """The shard's ``maps`` as a read-only memory map of the file; None where the dataset is
        chunked, filtered or not little-endian float32 (read through h5py)."""
        maps = self._maps(shard)
        offset = maps.id.get_offset() if maps.chunks is None else None
        if offset is None or maps.dtype != np.dtype("<f4") or maps.external:
            return None
        # As a plain array over the mapped file: np.memmap's own indexing adds a third of a
        # batch's time.
        return np.asarray(np.memmap(self.paths[shard], "<f4", "r", offset=offset, shape=maps.shape))

    def _maps(self, shard: int) -> h5py.Dataset:
        """The open ``maps`` dataset of a shard (opening it per read costs ten reads)."""
        if shard not in self._datasets:
            self._files[shard] = h5py.File(self.paths[shard], "r")
            self._datasets[shard] = self._files[shard]["maps"]
        return self._datasets[shard]

    def _generator(self) -> torch.Generator:
        if self._rng is None:
            self._rng = torch.Generator().manual_seed(torch.initial_seed())
        return self._rng

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._files: dict[int, h5py.File] = {}
        self._datasets: dict[int, h5py.Dataset] = {}
        self._mapped: MappedShards | bool | None = None  # built on the first streamed read
        self._rng: torch.Generator | None = None

    def _ensure_process_state(self) -> None:
        # A forked worker inherits the parent's attributes: drop its handles and generator so
        # it opens its own files and draws from its own seed. Maps already in memory are kept:
        # plain arrays, shared with the parent page by page until written (never).
        if self._pid != os.getpid():
            self._reset_process_state()

    def close(self) -> None:
        """Close this process's HDF5 handles and drop the maps held in memory."""
        self._close_handles()
        self._reset_process_state()
        self._memory = None

    def _close_handles(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        self._datasets.clear()

    def __getstate__(self) -> dict:
        # Spawned workers (macOS, Windows) receive a pickled copy: handles cannot travel, and
        # a gigabyte of maps should not travel through a pipe.
        state = self.__dict__.copy()
        state.update(_files={}, _datasets={}, _mapped=None, _memory=None, _rng=None, _pid=None)
        return state


def _runs(channels: Sequence[int]) -> list[tuple[int, int, int]]:
    """(first output channel, count, first file channel) of each run of consecutive file
    channels in ``channels``: a map's run is one block of the file, copied at once."""
    runs: list[tuple[int, int, int]] = []
    for c, channel in enumerate(channels):
        if runs and runs[-1][2] + runs[-1][1] == channel:
            first, n, start = runs[-1]
            runs[-1] = (first, n + 1, start)
        else:
            runs.append((c, 1, channel))
    return runs


def _read_shard_info(path: Path, fields: Sequence[str], params: Sequence[str]) -> dict:
    """Validate one shard against the requested fields/params and read its small arrays."""
    if not path.is_file():
        raise FileNotFoundError(f"shard file not found: {path}")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise ShardFormatError(f"{path}: not a readable HDF5 file ({err})") from err
    with h5:
        for key in _REQUIRED_DATASETS:
            if key not in h5:
                raise ShardFormatError(f"{path}: dataset '{key}' missing")
        for key in _REQUIRED_ATTRS:
            if key not in h5.attrs:
                raise ShardFormatError(f"{path}: attribute '{key}' missing")
        shard_fields = string_attr(h5, "fields")
        param_names = string_attr(h5, "param_names")
        for field in fields:
            if field not in shard_fields:
                raise ShardFormatError(
                    f"{path}: field '{field}' not in attribute 'fields' {shard_fields}"
                )
        for param in params:
            if param not in param_names:
                raise ShardFormatError(
                    f"{path}: parameter '{param}' not in attribute 'param_names' {param_names}"
                )
        maps = h5["maps"]
        n = maps.shape[0]
        if maps.ndim != 4 or maps.shape[1] != len(shard_fields) or maps.shape[2] != maps.shape[3]:
            raise ShardFormatError(
                f"{path}: dataset 'maps' has shape {maps.shape}, expected "
                f"(n, {len(shard_fields)}, N, N) for fields {shard_fields}"
            )
        for key in ("params", "params_raw", "sim_id", "map_index"):
            if h5[key].shape[0] != n:
                raise ShardFormatError(
                    f"{path}: dataset '{key}' has {h5[key].shape[0]} rows, 'maps' has {n}"
                )
        channels = [shard_fields.index(f) for f in fields]
        columns = [param_names.index(p) for p in params]
        mean = np.asarray(h5.attrs["mean"], dtype=np.float64)
        std = np.asarray(h5.attrs["std"], dtype=np.float64)
        return {
            "channels": channels,
            "map_size": int(maps.shape[2]),
            "targets": np.ascontiguousarray(h5["params"][:][:, columns], dtype=np.float32),
            "params_raw": np.asarray(h5["params_raw"][:], dtype=np.float32),
            "sim_id": np.asarray(h5["sim_id"][:], dtype=np.int64),
            "map_index": np.asarray(h5["map_index"][:], dtype=np.int64),
            "param_names": param_names,
            "mean": mean[channels],
            "std": std[channels],
        }


def _check_consistent(paths: Sequence[Path], infos: Sequence[dict], fields: Sequence[str]) -> None:
    """All shards of one dataset share map size and normalization; the first one sets them."""
    first, ref = paths[0], infos[0]
    for path, info in zip(paths[1:], infos[1:], strict=True):
        if info["map_size"] != ref["map_size"]:
            raise ShardFormatError(
                f"{path}: maps of {info['map_size']}x{info['map_size']} pixels but {first} "
                f"has {ref['map_size']}x{ref['map_size']}"
            )
        if not (np.allclose(info["mean"], ref["mean"]) and np.allclose(info["std"], ref["std"])):
            raise ShardFormatError(
                f"{path}: attributes 'mean'/'std' of fields {list(fields)} differ from those of "
                f"{first}; shards of one dataset must share one normalization"
            )


def unscale(scaled: np.ndarray, params: Sequence[str]) -> np.ndarray:
    """Physical values of min-max scaled parameters (..., P) named ``params`` (LH ranges).

    Unlike :func:`astroflow.maps.cmd.unscale_params` this works on any subset of parameters, as
    a network predicts only the ones it was trained for.
    """
    lo, width = _lo_width(params)
    return (np.asarray(scaled, dtype=np.float64) * width + lo).astype(np.float32)


def unscale_sigma(sigma: np.ndarray, params: Sequence[str]) -> np.ndarray:
    """Physical standard deviations (..., P) of scaled-parameter standard deviations."""
    _, width = _lo_width(params)
    return (np.asarray(sigma, dtype=np.float64) * width).astype(np.float32)


def _lo_width(params: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    unknown = [p for p in params if p not in cmd.LH_RANGES]
    if unknown:
        raise ValueError(f"parameters {unknown} have no LH range (known: {list(cmd.LH_RANGES)})")
    lo = np.array([cmd.LH_RANGES[p][0] for p in params], dtype=np.float64)
    hi = np.array([cmd.LH_RANGES[p][1] for p in params], dtype=np.float64)
    return lo, hi - lo
