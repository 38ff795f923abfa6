"""Tiny shard files in the documented shard format, with a signal a network can learn quickly.

Each map is a periodic Gaussian random field smoothed with a Gaussian kernel whose width grows
with Omega_m (0.5 to 3 pixels) and scaled to a standard deviation that grows with sigma_8
(0.5 to 2): sigma_8 is read off the map's amplitude, Omega_m off its smoothness. The second
and third fields are non-linear functions of the first plus their own noise, so channels are
correlated but distinct. The other four parameters are drawn but leave no trace in the maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from astroflow.maps import cmd

FIELD_MEAN = {"Mgas": 10.0, "HI": 5.0, "B": -8.0}
FIELD_STD = {"Mgas": 0.5, "HI": 1.0, "B": 0.8}


def smoothing_pixels(omega_m: np.ndarray) -> np.ndarray:
    """Gaussian smoothing width (pixels) of the maps of a simulation with ``omega_m``."""
    return 0.5 + 2.5 * (omega_m - 0.1) / 0.4


def amplitude(sigma_8: np.ndarray) -> np.ndarray:
    """Standard deviation of the first field of a simulation with ``sigma_8``."""
    return 0.5 + 1.5 * (sigma_8 - 0.6) / 0.4


def _smooth_field(rng: np.random.Generator, size: int, width: float) -> np.ndarray:
    """Zero-mean, unit-variance periodic field (size, size) smoothed over ``width`` pixels."""
    k = np.fft.fftfreq(size) * 2 * np.pi
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    field = np.fft.ifft2(
        np.fft.fft2(rng.standard_normal((size, size))) * np.exp(-k2 * width**2 / 2)
    )
    field = field.real
    return (field - field.mean()) / field.std()


def learnable_maps(
    params_raw: np.ndarray, maps_per_sim: int, map_size: int, n_fields: int, seed: int
) -> np.ndarray:
    """Maps (n_sims * maps_per_sim, n_fields, N, N) float32 for parameter rows (n_sims, 6)."""
    rng = np.random.default_rng(seed)
    omega_m, sigma_8 = params_raw[:, 0], params_raw[:, 1]
    out = np.empty((len(params_raw) * maps_per_sim, n_fields, map_size, map_size), np.float32)
    for i in range(out.shape[0]):
        sim = i // maps_per_sim
        g = _smooth_field(rng, map_size, smoothing_pixels(omega_m[sim]))
        channels = [g, np.tanh(g) + 0.3 * rng.standard_normal(g.shape), g**2 - 1.0]
        for f in range(n_fields):
            c = channels[f]
            out[i, f] = amplitude(sigma_8[sim]) * (c - c.mean()) / c.std()
    return out


def write_shard(
    path: str | Path,
    *,
    n_sims: int,
    maps_per_sim: int = 4,
    map_size: int = 16,
    fields: Sequence[str] = ("Mgas", "HI"),
    seed: int = 0,
    first_sim: int = 0,
    split: str = "train",
    shard: int = 0,
) -> Path:
    """Write one shard of ``n_sims`` simulations with LH-uniform parameters drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    lo = np.array([cmd.LH_RANGES[p][0] for p in cmd.PARAM_NAMES])
    hi = np.array([cmd.LH_RANGES[p][1] for p in cmd.PARAM_NAMES])
    params_raw = (lo + (hi - lo) * rng.random((n_sims, len(cmd.PARAM_NAMES)))).astype(np.float32)
    maps = learnable_maps(params_raw, maps_per_sim, map_size, len(fields), seed + 1)
    sim_id = first_sim + np.repeat(np.arange(n_sims), maps_per_sim)
    map_index = sim_id * cmd.MAPS_PER_SIM + np.tile(np.arange(maps_per_sim), n_sims)
    per_map = np.repeat(params_raw, maps_per_sim, axis=0)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("maps", data=maps)  # contiguous, as write_shard stores it uncompressed
        h5.create_dataset("params", data=cmd.scale_params(per_map))
        h5.create_dataset("params_raw", data=per_map)
        h5.create_dataset("sim_id", data=sim_id.astype(np.int64))
        h5.create_dataset("map_index", data=map_index.astype(np.int64))
        h5.attrs.update(
            {
                "fields": list(fields),
                "param_names": list(cmd.PARAM_NAMES),
                "mean": np.array([FIELD_MEAN[f] for f in fields]),
                "std": np.array([FIELD_STD[f] for f in fields]),
                "log_floor": 1e-20,
                "split": split,
                "shard": shard,
                "suite": "IllustrisTNG",
                "set": "LH",
                "source_files": ["synthetic"],
                "source_sizes": np.array([0], dtype=np.int64),
                "format_version": 1,
            }
        )
    return path


def write_splits(
    directory: Path,
    n_sims: dict[str, int],
    *,
    shards_per_split: int = 1,
    seed: int = 0,
    **kwargs,
) -> dict[str, list[Path]]:
    """Shards ``{directory}/{split}/{shard:03d}.h5``, each of ``n_sims[split]`` simulations.

    Simulation ids and seeds differ between splits and shards, so no simulation leaks.
    """
    paths: dict[str, list[Path]] = {}
    first_sim = 0
    for i, (split, count) in enumerate(n_sims.items()):
        paths[split] = []
        for shard in range(shards_per_split):
            path = directory / split / f"{shard:03d}.h5"
            shard_seed = seed + 1000 * i + 10 * shard
            write_shard(
                path,
                n_sims=count,
                seed=shard_seed,
                first_sim=first_sim,
                split=split,
                shard=shard,
                **kwargs,
            )
            paths[split].append(path)
            first_sim += count
    return paths
