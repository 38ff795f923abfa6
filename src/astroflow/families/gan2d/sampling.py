"""Generated maps as a product: ``results/<experiment>/samples/<name>.h5`` and the same maps
in the CMD layout, so that they feed the rest of the DAG as real maps do.

A sample set (an entry of the experiment's ``samples`` setting) lists parameter rows, all six
CMD parameters each, explicitly (``params``) or as a Latin hypercube over the LH ranges drawn
from the config seed (``latin_hypercube: n``); every row becomes ``sims`` simulations of 15
maps. The HDF5 file holds ``maps`` (n, F, N, N) float32, standardized log10 as in the shards,
``params_raw`` (n, 6) and ``sim_id`` (n,), with attributes ``fields``, ``param_names``,
``mean``, ``std`` and ``model``. The CMD folder holds ``Maps_{field}_{suite}_{set}_z=0.00.npy``
(15 * simulations, N, N) float32 in physical units and ``params_{set}_{suite}.txt``: point
``data.path`` of a config with ``data.source: local`` at it.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from astroflow.families.gan2d.emulate import generate
from astroflow.io import atomic_path
from astroflow.maps import cmd
from astroflow.maps.shards import denormalize_maps
from astroflow.maps.synthetic import sample_lh_params
from astroflow.modelfile import load_model


def parameter_rows(name: str, table: Mapping[str, Any], seed: int) -> np.ndarray:
    """Parameter rows (S, 6) of sample set ``name``: its ``params`` or its Latin hypercube,
    drawn from ``seed`` and the set's name, rounded to the 5 decimals of a CMD table."""
    if "params" in table:
        rows = np.asarray(table["params"], dtype=np.float64)
    else:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        rows = sample_lh_params(table["latin_hypercube"], rng)
    return np.round(rows, 5)


def write_samples(
    name: str,
    model_path: str | os.PathLike[str],
    out_h5: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    settings: Mapping[str, Any],
    config: Mapping[str, Any],
    threads: int | None = None,
) -> Path:
    """Generate sample set ``name`` with the model at ``model_path``; write both layouts.

    Simulation ``i`` of the CMD files has row ``i // sims`` of the table and latents seeded
    by the config seed and the set's name, so the same config gives the same files.
    """
    if threads:
        torch.set_num_threads(threads)
    table = settings["samples"][name]
    model, meta = load_model(model_path, "cpu")
    rows = np.repeat(parameter_rows(name, table, config["seed"]), table["sims"], axis=0)
    columns = [cmd.PARAM_NAMES.index(p) for p in meta["params"]]
    scaled = cmd.scale_params(rows)[:, columns]
    seed = int(
        np.random.SeedSequence([config["seed"], zlib.crc32(name.encode())]).generate_state(1)[0]
    )
    maps = generate(model, scaled, cmd.MAPS_PER_SIM, seed, "cpu")
    mean = np.asarray(meta["normalization"]["mean"])
    std = np.asarray(meta["normalization"]["std"])
    suite, set_name = config["data"]["suite"], config["data"]["set"]

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for f, field in enumerate(meta["fields"]):
        physical = denormalize_maps(maps[:, f], mean[f], std[f]).astype("<f4")
        path = out_dir / cmd.map_filename(field, suite, set_name)
        with atomic_path(path) as tmp, open(tmp, "wb") as stream:
            np.save(stream, physical, allow_pickle=False)
    with atomic_path(out_dir / cmd.params_filename(suite, set_name)) as tmp:
        np.savetxt(tmp, rows, fmt="%.5f")
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("maps", data=maps, chunks=(1, *maps.shape[1:]))
        h5.create_dataset("params_raw", data=np.repeat(rows, cmd.MAPS_PER_SIM, axis=0))
        h5.create_dataset("sim_id", data=np.repeat(np.arange(len(rows)), cmd.MAPS_PER_SIM))
        h5.attrs.update(
            {
                "fields": list(meta["fields"]),
                "param_names": list(cmd.PARAM_NAMES),
                "mean": mean,
                "std": std,
                "model": str(model_path),
            }
        )
    return Path(out_h5)
