"""HDF5 shards of synthetic cores: one job synthesises and writes one shard of many cores.

Layout of a shard (n cores; nv channels; nb line-of-sight bins; ny = nx = grid size):

- ``cubes`` (n, nv, ny, nx) float32, K: the mock PPV cubes (network input);
- ``density`` (n, nb, ny, nx) float32, cm^-3: bin-mean H2 density along each column;
- ``velocity`` (n, nb, ny, nx) float32, km/s: density-weighted line-of-sight velocity per bin;
- ``column_density`` (n, ny, nx) float32, cm^-2: H2 column density;
- ``params`` (n, 13) float64: generating parameters, names and units in its attributes;
- ``channels`` (nv,) km/s and ``bin_centers`` (nb,) pc: the channel and bin definitions.

Every dataset carries a ``units`` attribute; the file's attributes record the full core
configuration (JSON), the derived line constants, split, shard and seed. Per-core arrays are
chunked one core per chunk, uncompressed, as the map shards are. A shard is a pure function
of (config, seed, split, shard, cores per shard): the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from astroflow.cubes.config import CoreConfig
from astroflow.cubes.params import PARAM_NAMES, PARAM_UNITS
from astroflow.io import atomic_path

FORMAT_VERSION = 1
"""Version of the cube shard layout; bumped when it changes incompatibly."""

_PER_CORE = ("cubes", "density", "velocity", "column_density", "params")
_UNITS = {
    "cubes": "K",
    "density": "cm-3",
    "velocity": "km/s",
    "column_density": "cm-2",
    "params": "",
    "channels": "km/s",
    "bin_centers": "pc",
}


class CubeShardError(ValueError):
    """A cube shard cannot be read; the message names the file and the missing or bad key."""


@dataclass(frozen=True)
class CubeShard:
    """Contents of a cube shard (arrays as in the module docstring, in physical units)."""

    cubes: np.ndarray
    density: np.ndarray
    velocity: np.ndarray
    column_density: np.ndarray
    params: np.ndarray
    channels: np.ndarray
    bin_centers: np.ndarray
    config: CoreConfig
    attrs: dict[str, Any]


def shard_seed(seed: int, split: str, shard: int) -> np.random.SeedSequence:
    """The seed sequence of one shard: the workflow seed, keyed by split name and shard index.

    The split name enters through its CRC-32, a stable function of the name, so shards of any
    split are independent of each other and of how many shards other splits have.
    """
    return np.random.SeedSequence(seed, spawn_key=(zlib.crc32(split.encode()), int(shard)))


def write_cube_shard(
    config: CoreConfig | Mapping[str, Any],
    split: str,
    shard: int,
    n_cores_per_shard: int,
    seed: int,
    out_path: str | os.PathLike[str],
) -> Path:
    """Synthesise ``n_cores_per_shard`` cores and write them as one shard at ``out_path``.

    Core i draws from child i of :func:`shard_seed`, so the shard is deterministic. Cores are
    written one at a time (memory stays at one core) to a temporary file renamed onto
    ``out_path`` when complete; on any error nothing is left under the final name.
    """
    # The synthesis runs compiled loops (numba): only writers load it, not every shard reader.
    from astroflow.cubes.synthetic import CoreSynthesizer, column_density, los_profiles

    if not isinstance(config, CoreConfig):
        config = CoreConfig.from_mapping(config)
    if n_cores_per_shard < 1:
        raise ValueError(f"n_cores_per_shard must be >= 1, got {n_cores_per_shard}")
    synth = CoreSynthesizer(config)
    n, nv, nb = config.grid_size, config.n_channels, config.n_bins
    shapes = {
        "cubes": (nv, n, n),
        "density": (nb, n, n),
        "velocity": (nb, n, n),
        "column_density": (n, n),
    }
    core_seeds = shard_seed(seed, split, shard).spawn(n_cores_per_shard)

    with atomic_path(out_path) as tmp, h5py.File(tmp, "w", track_order=False) as h5:
        data = {
            name: _dataset(h5, name, (n_cores_per_shard, *shape), np.float32, (1, *shape))
            for name, shape in shapes.items()
        }
        params = _dataset(h5, "params", (n_cores_per_shard, len(PARAM_NAMES)), np.float64)
        for i, core_seed in enumerate(core_seeds):
            core = synth.synthesize(np.random.default_rng(core_seed))
            density, velocity = los_profiles(core.density, core.velocity, nb)
            data["cubes"][i] = core.cube
            data["density"][i] = density
            data["velocity"][i] = velocity
            data["column_density"][i] = column_density(core.density, config.voxel_cm)
            params[i] = core.params
        params.attrs["names"] = list(PARAM_NAMES)
        params.attrs["param_units"] = list(PARAM_UNITS)
        for name, values in (
            ("channels", config.channels_kms),
            ("bin_centers", config.bin_centers_pc),
        ):
            _dataset(h5, name, values.shape, np.float64)[...] = values
        h5.attrs.update(
            {
                "format_version": FORMAT_VERSION,
                "config": json.dumps(config.to_dict(), sort_keys=True),
                "split": split,
                "shard": int(shard),
                "seed": int(seed),
                "n_cores": int(n_cores_per_shard),
                "kappa_K_kms_cm2": config.kappa,
                "thermal_sigma_kms": config.thermal_sigma_kms,
                "subvoxel_sigma_kms": config.subvoxel_sigma_kms,
                "line_sigma_kms": config.line_sigma_kms,
                "box_sigma_kms": config.box_sigma_kms,
                "voxel_pc": config.voxel_pc,
                "rest_frequency_hz": config.tracer_constants.rest_frequency_hz,
                "axes": "cubes (core, v, y, x); profiles (core, z, y, x), z away from observer",
            }
        )
    return Path(out_path)


def read_cube_shard(
    path: str | os.PathLike[str], indices: np.ndarray | slice | None = None
) -> CubeShard:
    """Read a cube shard (all cores, or those at ``indices``, ascending) with its config.

    A missing file, a missing dataset or attribute, or a layout version this code does not
    read raises an error naming the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cube shard not found: {path}")
    select = slice(None) if indices is None else indices
    with h5py.File(path, "r") as h5:
        for key in (*_PER_CORE, "channels", "bin_centers"):
            if key not in h5:
                raise CubeShardError(f"{path}: dataset '{key}' missing (have {sorted(h5)})")
        for key in ("format_version", "config"):
            if key not in h5.attrs:
                raise CubeShardError(f"{path}: attribute '{key}' missing")
        if h5.attrs["format_version"] != FORMAT_VERSION:
            raise CubeShardError(
                f"{path}: attribute 'format_version' is {h5.attrs['format_version']}, "
                f"this astroflow reads {FORMAT_VERSION}"
            )
        arrays = {key: h5[key][select] for key in _PER_CORE}
        attrs = {k: _plain(v) for k, v in h5.attrs.items()}
        channels, bin_centers = h5["channels"][...], h5["bin_centers"][...]
    return CubeShard(
        **arrays,
        channels=channels,
        bin_centers=bin_centers,
        config=CoreConfig.from_mapping(json.loads(attrs["config"])),
        attrs=attrs,
    )


def _dataset(
    h5: h5py.File,
    name: str,
    shape: tuple[int, ...],
    dtype: type,
    chunks: tuple[int, ...] | None = None,
) -> h5py.Dataset:
    # No modification times in the object headers: the same inputs must give the same bytes.
    dset = h5.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, track_times=False)
    dset.attrs["units"] = _UNITS[name]
    return dset


def _plain(value: Any) -> Any:
    """HDF5 attribute value as a builtin (numpy scalars and arrays are not JSON types)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
