"""Train-split statistics and HDF5 shards built from raw CMD-layout map files.

A real CMD field file holds 15,000 maps of 256x256 float32 (about 4 GB), so nothing here
loads a field file whole: files are opened memory-mapped and read in contiguous runs of
sorted map indices, a bounded number of bytes at a time. Statistics come from the train
split only, so validation and test maps never leak into the normalization.

Maps are stored as ``(log10(max(x, log_floor)) - mean_f) / std_f`` in float32. The shard
``maps`` dataset is not compressed by default: on log-normal 256x256 maps, lzf+shuffle saves
13% of the bytes and gzip+shuffle 19% (log-standardized float32 mantissas are close to
random), while writing 6-12x and reading 4-8x slower, and shards are re-read every epoch.
Uncompressed, it is stored contiguously (samples outer, fields inner), so a loader that
streams it maps the file into memory and gathers a batch with one array index, at the speed
of maps held in memory (:class:`astroflow.maps.dataset.ShardDataset`); any one field of a
sample is still one contiguous read. ``compression="lzf"`` or ``"gzip"`` remains available
for tight disk quotas; those shards are chunked one map (one field of one sample) per chunk.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from astroflow.io import atomic_path, write_json
from astroflow.maps import cmd
from astroflow.maps.splits import maps_of_sims, shards_of_split, split_simulations

FORMAT_VERSION = 1
"""Version of the shard and stats.json layout; bumped when either changes incompatibly."""

DEFAULT_CHUNK_BYTES = 1 << 24
"""Raw bytes read per step (16 MiB: 64 maps of 256x256 float32), the bound on working memory."""

_STATS_KEYS = (
    "field_order",
    "fields",
    "log_floor",
    "n_sims",
    "seed",
    "set",
    "source_files",
    "splits",
    "suite",
)


DOMINANT_SHARE = 0.25
"""A map holding more than this share of a field's variance (and more than ten times its fair
share) dominates the statistics: one bad map would rescale every shard of the field."""


class DataFormatError(ValueError):
    """Input (raw maps, parameter table, stats.json) that cannot become shards.

    The message names the offending file and what is wrong with it.
    """


def normalize_maps(
    maps: np.ndarray, mean: float | np.ndarray, std: float | np.ndarray, log_floor: float
) -> np.ndarray:
    """Shard normalization ``(log10(max(x, log_floor)) - mean) / std`` as a new float32 array.

    ``mean`` and ``std`` broadcast against ``maps``: scalars for one field ``(n, N, N)``,
    shape ``(F, 1, 1)`` for a stack ``(n, F, N, N)``. The floor keeps empty pixels (zero HI in
    voids, say) finite; it is the only lossy step.
    """
    out = _log_field(maps, log_floor)
    out -= np.asarray(mean, dtype=np.float32)
    out /= np.asarray(std, dtype=np.float32)
    return out


def denormalize_maps(
    z: np.ndarray, mean: float | np.ndarray, std: float | np.ndarray
) -> np.ndarray:
    """Inverse of :func:`normalize_maps`: physical values ``10**(z * std + mean)`` (float64).

    Exact up to float32 rounding for pixels above the floor; floored pixels come back as
    ``log_floor``.
    """
    return 10.0 ** (np.asarray(z, dtype=np.float64) * std + mean)


def _log_field(maps: np.ndarray, log_floor: float) -> np.ndarray:
    """``log10(max(x, log_floor))`` as a new float32 array (the statistics are taken on it)."""
    out = np.maximum(maps, log_floor, dtype=np.float32)
    np.log10(out, out=out)
    return out


def compute_train_stats(
    raw_dir: str | os.PathLike[str],
    suite: str,
    set_name: str,
    fields: Sequence[str],
    n_sims: int,
    fractions: Mapping[str, float],
    seed: int,
    log_floor: float,
    out_json: str | os.PathLike[str],
    *,
    map_size: int | None = None,
    floor_non_positive: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> dict:
    """Per-field mean/std of ``log10(max(x, log_floor))`` over the train maps; write stats.json.

    Every raw file is validated first (shape ``(15 * n_sims, N, N)``, float32, C order, not
    truncated; parameter table ``n_sims x 6`` finite), so a bad input fails before any work
    with a :class:`DataFormatError` (or ``FileNotFoundError``) naming the file. The train maps
    are then streamed memory-mapped, ``chunk_bytes`` of raw data at a time, and the moments
    combined chunk by chunk in float64 (Chan et al. pairwise update), so memory stays bounded
    whatever the file size.

    Maps of another side than ``map_size`` (the config's ``data.map_size``) are refused too.
    Every field is log-transformed, so each train map must be physically plausible first: a
    non-positive pixel (unless ``floor_non_positive``: then it is floored at ``log_floor`` and
    counted), a constant map, or a map holding most of the field's variance is a
    :class:`DataFormatError` naming the file and the map index.

    stats.json also records what the shards need to be rebuilt identically: the field order
    (axis 1 of ``maps``), the simulation ids of every split, seed, fractions and the raw
    file sizes. Returns the same dictionary.
    """
    fields = _check_fields(fields)
    log_floor = _check_floor(log_floor)
    if "train" not in fractions:
        raise ValueError(f"split fractions {dict(fractions)} have no 'train' split")
    splits = split_simulations(n_sims, fractions, seed)
    raw = _open_raw(Path(raw_dir), suite, set_name, fields, n_sims)
    if map_size is not None and raw.map_size != map_size:
        raise DataFormatError(
            f"{raw.paths[fields[0]]}: maps of {raw.map_size}x{raw.map_size} pixels but "
            f"data.map_size is {map_size}; set data.map_size: {raw.map_size} or use files of "
            f"{map_size}x{map_size} maps"
        )
    train_maps = maps_of_sims(splits["train"])
    chunk_maps = _maps_per_read(raw.map_size, chunk_bytes)

    field_stats = {}
    for field in fields:
        field_stats[field] = _field_moments(
            raw.maps[field],
            raw.paths[field],
            field,
            train_maps,
            log_floor,
            chunk_maps,
            floor_non_positive,
        )

    stats = {
        "format_version": FORMAT_VERSION,
        "suite": suite,
        "set": set_name,
        "n_sims": int(n_sims),
        "map_size": raw.map_size,
        "field_order": list(fields),
        "fields": field_stats,
        "log_floor": log_floor,
        "floor_non_positive": bool(floor_non_positive),
        "seed": int(seed),
        "fractions": {name: float(value) for name, value in fractions.items()},
        "splits": {name: ids.tolist() for name, ids in splits.items()},
        "n_maps": {name: int(ids.size) * cmd.MAPS_PER_SIM for name, ids in splits.items()},
        "source_files": raw.sizes,
    }
    write_json(out_json, stats)
    return stats


def write_shard(
    raw_dir: str | os.PathLike[str],
    suite: str,
    set_name: str,
    stats_json: str | os.PathLike[str],
    split: str,
    shard: int,
    maps_per_shard: int,
    out_path: str | os.PathLike[str],
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    compression: str | None = None,
) -> Path:
    """Write shard ``shard`` of ``split`` (layout in the module docstring and the spec).

    Fields, splits, seed and statistics come from ``stats_json``; the shard's map indices are
    those of :func:`astroflow.maps.splits.shards_of_split` over the split's simulations, so
    they agree with :func:`astroflow.maps.splits.shard_map_indices` for the same config.
    Only the selected maps are read, in ascending contiguous runs. Raw files whose sizes
    differ from those recorded in stats.json are refused (the statistics would be stale).
    The file appears under ``out_path`` only once complete; on error nothing is left there.
    """
    stats_json = Path(stats_json)
    stats = _read_stats(stats_json)
    if (stats["suite"], stats["set"]) != (suite, set_name):
        raise DataFormatError(
            f"{stats_json} describes {stats['suite']}/{stats['set']}, not {suite}/{set_name}"
        )
    if split not in stats["splits"]:
        raise ValueError(f"split {split!r} not in {stats_json} (splits: {list(stats['splits'])})")
    shards = shards_of_split(np.asarray(stats["splits"][split]), maps_per_shard)
    if not 0 <= shard < len(shards):
        raise ValueError(
            f"shard {shard} out of range: split {split!r} has {len(shards)} shard(s) "
            f"of at most {maps_per_shard} maps"
        )
    indices = shards[shard]
    fields = stats["field_order"]
    log_floor = float(stats["log_floor"])
    raw = _open_raw(Path(raw_dir), suite, set_name, fields, int(stats["n_sims"]))
    _check_unchanged(raw.sizes, stats["source_files"], stats_json)
    mean = np.array([stats["fields"][f]["mean"] for f in fields], dtype=np.float64)
    std = np.array([stats["fields"][f]["std"] for f in fields], dtype=np.float64)

    sim_id = indices // cmd.MAPS_PER_SIM
    params_raw = raw.params[sim_id].astype(np.float32)
    n, size = indices.size, raw.map_size
    floor, floored = bool(stats.get("floor_non_positive", False)), 0
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        maps = h5.create_dataset(
            "maps",
            shape=(n, len(fields), size, size),
            dtype="<f4",
            chunks=None if compression is None else (1, 1, size, size),
            compression=compression,
            shuffle=compression is not None,
        )
        for lo, hi in _runs(indices, _maps_per_read(size, chunk_bytes)):
            first = int(indices[lo])
            for i, field in enumerate(fields):
                floored += _check_plausible(
                    raw.maps[field][first : first + hi - lo], raw.paths[field], field, first, floor
                )
                block = normalize_maps(
                    raw.maps[field][first : first + hi - lo], mean[i], std[i], log_floor
                )
                _check_finite(block, raw.paths[field], first)
                maps[lo:hi, i] = block
        h5.create_dataset("params", data=cmd.scale_params(params_raw))
        h5.create_dataset("params_raw", data=params_raw)
        h5.create_dataset("sim_id", data=sim_id.astype(np.int64))
        h5.create_dataset("map_index", data=indices.astype(np.int64))
        h5.attrs.update(
            {
                "fields": list(fields),
                "param_names": list(cmd.PARAM_NAMES),
                "mean": mean,
                "std": std,
                "log_floor": log_floor,
                "floor_non_positive": floor,
                "floored_pixels": int(floored),
                "split": split,
                "shard": int(shard),
                "suite": suite,
                "set": set_name,
                "seed": int(stats["seed"]),
                "maps_per_shard": int(maps_per_shard),
                "source_files": list(raw.sizes),
                "source_sizes": np.array(list(raw.sizes.values()), dtype=np.int64),
                "format_version": FORMAT_VERSION,
            }
        )
    return Path(out_path)


@dataclass(frozen=True)
class _RawSet:
    """Validated raw inputs: memory-mapped field files, parameter table, file sizes."""

    maps: dict[str, np.ndarray]  # field -> read-only memmap (15 * n_sims, N, N) float32
    paths: dict[str, Path]
    params: np.ndarray  # (n_sims, 6) float64, physical values
    map_size: int
    sizes: dict[str, int]  # basename -> bytes, map files in field order then the table


def _open_raw(
    raw_dir: Path, suite: str, set_name: str, fields: Sequence[str], n_sims: int
) -> _RawSet:
    """Open and validate every input before any work, so a bad file fails fast and alone."""
    maps, paths = {}, {}
    for field in fields:
        path = raw_dir / cmd.map_filename(field, suite, set_name)
        maps[field] = _open_maps(path, n_sims)
        paths[field] = path
    reference = fields[0]
    for field in fields[1:]:
        if maps[field].shape != maps[reference].shape:
            raise DataFormatError(
                f"{paths[field]}: maps of shape {maps[field].shape[1:]} but "
                f"{paths[reference]} has {maps[reference].shape[1:]}; all fields must share "
                "the map size"
            )
    params_path = raw_dir / cmd.params_filename(suite, set_name)
    params = _load_params(params_path, n_sims)
    if set_name == "LH":
        _check_lh_ranges(params, params_path)
    sizes = {p.name: p.stat().st_size for p in [*paths.values(), params_path]}
    return _RawSet(maps, paths, params, int(maps[fields[0]].shape[1]), sizes)


def _open_maps(path: Path, n_sims: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"raw map file not found: {path}")
    with open(path, "rb") as fh:
        start = fh.read(6)
    # numpy's error for a file that is no .npy at all talks about pickles: say what it is.
    if start != b"\x93NUMPY":
        raise DataFormatError(
            f"{path}: not a .npy file (it starts with {start!r}: an HTML error page or another "
            "file saved under this name?); fetch or copy the file again"
        )
    try:
        maps = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataFormatError(f"{path}: not a readable .npy array ({err})") from err
    if not isinstance(maps, np.memmap):
        raise DataFormatError(f"{path}: not a single .npy array")
    if maps.dtype != np.dtype("<f4"):
        raise DataFormatError(f"{path}: dtype {maps.dtype.str}, expected float32 ('<f4')")
    n_maps = cmd.MAPS_PER_SIM * n_sims
    if maps.ndim != 3 or maps.shape[0] != n_maps or maps.shape[1] != maps.shape[2]:
        raise DataFormatError(
            f"{path}: shape {maps.shape}, expected ({n_maps}, N, N): "
            f"{cmd.MAPS_PER_SIM} square maps for each of {n_sims} simulations"
        )
    # A Fortran-ordered file would turn every single-map read into a scan of the whole file.
    if not maps.flags.c_contiguous:
        raise DataFormatError(f"{path}: stored in Fortran order, expected C order")
    if maps.offset + maps.nbytes != path.stat().st_size:
        raise DataFormatError(
            f"{path}: {path.stat().st_size} bytes, expected {maps.offset + maps.nbytes} "
            "from its header (truncated or trailing data)"
        )
    return maps


def _load_params(path: Path, n_sims: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"parameter table not found: {path}")
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise DataFormatError(f"{path}: cannot parse the parameter table ({err})") from err
    expected = (n_sims, len(cmd.PARAM_NAMES))
    if table.shape != expected:
        raise DataFormatError(
            f"{path}: table of shape {table.shape}, expected {expected} "
            f"(one row per simulation, columns {', '.join(cmd.PARAM_NAMES)})"
        )
    bad_rows = np.flatnonzero(~np.isfinite(table).all(axis=1))
    if bad_rows.size:
        raise DataFormatError(f"{path}: non-finite parameters in row(s) {bad_rows[:10].tolist()}")
    return table


def _check_lh_ranges(table: np.ndarray, path: Path) -> None:
    """LH parameters lie in the latin-hypercube ranges (other sets, 1P and EX say, leave them
    on purpose); a value outside names the file, the row and the parameter."""
    for j, name in enumerate(cmd.PARAM_NAMES):
        lo, hi = cmd.LH_RANGES[name]
        # The table is written with a few digits: allow its rounding at the edges.
        outside = np.flatnonzero((table[:, j] < lo * (1 - 1e-6)) | (table[:, j] > hi * (1 + 1e-6)))
        if outside.size:
            row = int(outside[0])
            raise DataFormatError(
                f"{path}: row {row} (simulation {row}) has {name} = {table[row, j]:g}, outside "
                f"the LH range [{lo:g}, {hi:g}] ({outside.size} row(s) affected); the table is "
                "corrupt or of another set (data.set)"
            )


def _field_moments(
    maps: np.ndarray,
    path: Path,
    field: str,
    indices: np.ndarray,
    log_floor: float,
    chunk_maps: int,
    floor_non_positive: bool = False,
) -> dict[str, float]:
    """Streamed mean/std of the log field over maps ``indices`` (ascending) of one file.

    Per-map moments are kept too (a few floats per map), to find a map that dominates them.
    """
    map_means, map_m2 = [], []
    n_floored = 0
    for lo, hi in _runs(indices, chunk_maps):
        first = int(indices[lo])
        raw = maps[first : first + hi - lo]
        _check_plausible(raw, path, field, first, floor_non_positive)
        n_floored += int(np.count_nonzero(raw < log_floor))
        logs = _log_field(raw, log_floor)
        _check_finite(logs, path, first)
        flat = logs.reshape(logs.shape[0], -1).astype(np.float64)
        means = flat.mean(axis=1)
        map_means.append(means)
        map_m2.append(np.square(flat - means[:, None]).sum(axis=1))
    means, m2s = np.concatenate(map_means), np.concatenate(map_m2)
    pixels = maps.shape[1] * maps.shape[2]
    # Pooled moments from the per-map ones (Chan et al.), all in float64.
    mean = float(means.mean())
    share = m2s + pixels * np.square(means - mean)
    total = float(share.sum())
    count = pixels * means.size
    std = math.sqrt(total / count)
    if not std > 0:
        raise DataFormatError(
            f"{path}: field {field} is constant after the log floor {log_floor:g} over the "
            "train maps; it cannot be standardized"
        )
    worst = int(np.argmax(share))
    if share[worst] / total > max(DOMINANT_SHARE, 10.0 / means.size):
        raise DataFormatError(
            f"{path}: map index {int(indices[worst])} of field {field} holds "
            f"{share[worst] / total:.0%} of the field's variance over {means.size} train maps "
            f"(its mean log10 is {means[worst]:.3g}, the others' {mean:.3g}); it would rescale "
            "every shard of the field: replace or remove that map"
        )
    return {"mean": mean, "std": std, "floored_fraction": n_floored / count}


def _check_plausible(
    raw: np.ndarray, path: Path, field: str, first: int, floor_non_positive: bool
) -> int:
    """Refuse a constant map, or non-positive pixels unless they may be floored (then their
    count is returned): maps ``first..`` of a field that is log-transformed."""
    flat = raw.reshape(raw.shape[0], -1)
    lowest, highest = flat.min(axis=1), flat.max(axis=1)
    constant = np.flatnonzero(lowest == highest)
    if constant.size:
        i = int(constant[0])
        raise DataFormatError(
            f"{path}: map index {first + i} of field {field} is constant (every pixel "
            f"{float(lowest[i]):g}); a map of the wrong field or a placeholder? replace it"
        )
    bad = np.flatnonzero(lowest <= 0)
    if bad.size == 0:
        return 0
    if not floor_non_positive:
        i = int(bad[0])
        raise DataFormatError(
            f"{path}: map index {first + i} of field {field} has "
            f"{int(np.count_nonzero(flat[i] <= 0))} non-positive pixel(s) (lowest "
            f"{float(lowest[i]):g}) and log10 is undefined there ({bad.size} map(s) of "
            f"{first}..{first + raw.shape[0] - 1} affected); replace the map, or set "
            "data.floor_non_positive: true to floor them at data.log_floor"
        )
    return int(np.count_nonzero(flat[bad] <= 0))


def _check_finite(block: np.ndarray, path: Path, first: int) -> None:
    """Refuse NaN/inf (after the log, so +inf in the raw map is caught too); name the map."""
    if np.isfinite(block).all():
        return
    bad = np.flatnonzero(~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1))
    raise DataFormatError(
        f"{path}: non-finite values in map index {first + int(bad[0])} "
        f"({bad.size} map(s) affected in indices {first}..{first + block.shape[0] - 1})"
    )


def _runs(indices: np.ndarray, max_len: int) -> Iterator[tuple[int, int]]:
    """Positions ``(lo, hi)`` in ascending ``indices`` such that ``indices[lo:hi]`` is a
    contiguous range of at most ``max_len`` maps: one slice of the memmap per read."""
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = [0, *breaks.tolist()]
    stops = [*breaks.tolist(), int(indices.size)]
    for start, stop in zip(starts, stops, strict=True):
        for lo in range(start, stop, max_len):
            yield lo, min(lo + max_len, stop)


def _maps_per_read(map_size: int, chunk_bytes: int) -> int:
    return max(1, int(chunk_bytes) // (map_size * map_size * np.dtype("<f4").itemsize))


def _check_fields(fields: Sequence[str]) -> list[str]:
    if isinstance(fields, str) or not fields:
        raise ValueError(f"fields must be a non-empty list of field names, got {fields!r}")
    fields = list(fields)
    if len(set(fields)) != len(fields):
        raise ValueError(f"fields must be unique, got {fields}")
    return fields


def _check_floor(log_floor: float) -> float:
    log_floor = float(log_floor)
    if not (math.isfinite(log_floor) and log_floor > 0):
        raise ValueError(f"log_floor must be a finite positive number, got {log_floor!r}")
    return log_floor


def _read_stats(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"stats file not found: {path}")
    try:
        stats = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: not valid JSON ({err})") from err
    missing = [key for key in _STATS_KEYS if key not in stats]
    if missing:
        raise DataFormatError(f"{path}: missing key(s) {missing}; rerun the stats step")
    absent = [f for f in stats["field_order"] if f not in stats["fields"]]
    if absent:
        raise DataFormatError(f"{path}: no statistics for field(s) {absent}")
    return stats


def _check_unchanged(sizes: dict[str, int], recorded: dict[str, int], stats_json: Path) -> None:
    changed = {
        name: (recorded.get(name), size)
        for name, size in sizes.items()
        if recorded.get(name) != size
    }
    if changed:
        detail = ", ".join(f"{name}: {old} -> {new} bytes" for name, (old, new) in changed.items())
        raise DataFormatError(
            f"raw files differ from those {stats_json} was computed from ({detail}); "
            "rerun the stats step"
        )
