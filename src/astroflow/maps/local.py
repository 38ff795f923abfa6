"""CMD files already on the cluster's storage, used in place: validated, then linked.

Many sites mirror CAMELS. Copying 3.9 GB per field into every working directory would double
the storage and the wait, so a file of ``data.path`` is checked (the .npy header and size, or
the parameter table) and linked into the raw layout; the shards read it memory-mapped through
the link, like a downloaded or synthesized file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from astroflow.maps.cmd import MAPS_PER_SIM, map_filename, params_filename
from astroflow.maps.download import npy_validator, params_validator, read_npy_header


def cmd_folder_shape(
    folder: str | os.PathLike[str], suite: str, set_name: str, field: str
) -> tuple[int, int]:
    """(simulations, map size) of the ``field`` maps of a CMD folder, from the .npy header.

    A missing folder or file, a header that is not (15 n, N, N) float32, is a ValueError
    naming the file and the config key ``data.path``.
    """
    path = Path(folder) / map_filename(field, suite, set_name)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (data.path: {folder}; fields and suite from data)")
    with open(path, "rb") as stream:
        shape, _, _ = read_npy_header(stream, str(path))
    if len(shape) != 3 or shape[1] != shape[2] or shape[0] % MAPS_PER_SIM:
        raise ValueError(
            f"{path}: maps of shape {shape}, expected (15 x simulations, N, N) as CMD writes them"
        )
    return shape[0] // MAPS_PER_SIM, int(shape[1])


def params_rows(folder: str | os.PathLike[str], suite: str, set_name: str) -> int:
    """Rows of the parameter table of a CMD folder (one per simulation)."""
    path = Path(folder) / params_filename(suite, set_name)
    if not path.is_file():
        raise ValueError(f"{path}: no such file (data.path: {folder})")
    return len(np.loadtxt(path, dtype=np.float64, ndmin=2))


def link_cmd_file(
    source: str | os.PathLike[str], dest: str | os.PathLike[str], n_sims: int, map_size: int
) -> Path:
    """Validate the CMD file ``source`` against the config and link it as ``dest``.

    Maps: shape (15 n_sims, map_size, map_size) float32 and the byte count the header implies;
    parameter table: n_sims rows of 6 finite numbers. The link is absolute and made under a
    temporary name, then renamed, so a half-made link never stands under the final name.
    """
    source, dest = Path(source).resolve(), Path(dest)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file (data.path)")
    if source.suffix == ".npy":
        keys = (
            f"expected from data.n_sims: {n_sims} (x {MAPS_PER_SIM} maps) and data.map_size: "
            f"{map_size}; leave them out to take them from the files"
        )
        npy_validator((MAPS_PER_SIM * n_sims, map_size, map_size), "<f4", keys)(source)
    else:
        params_validator(n_sims)(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        link = Path(tmp) / dest.name
        link.symlink_to(source)
        os.replace(link, dest)
    return dest
