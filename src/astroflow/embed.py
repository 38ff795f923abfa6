"""Embeddings of the test shards of an experiment, whatever its family, in one file format.

:func:`embed` rebuilds the trained network from its model file and lets its family write the
rows (cnn2d: one per map; cnn3d: one per cube). Every family writes the same layout through
:func:`write_embeddings`: ``embeddings.h5`` with datasets ``embeddings`` (n, D) float32,
``sim_id`` and ``map_index`` (n,) int64, ``params_raw`` (n, P) float32 physical parameters, and
attributes ``param_names`` (the P names, column order of ``params_raw``), ``fields`` and
``split`` (when known); cube embeddings add ``param_units``. t-SNE and clustering read only
this layout.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from astroflow.device import select_device
from astroflow.families import get_family
from astroflow.io import atomic_path
from astroflow.modelfile import load_model


def embed(
    model_path: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    out_h5: str | os.PathLike[str],
    batch_size: int = 64,
    *,
    num_workers: int = 0,
    threads: int | None = None,
    device: str | None = None,
    settings: Mapping[str, Any] | None = None,
    split: str | None = None,
) -> Path:
    """Write ``model.features`` of every item of ``shard_paths`` (eval mode, no augmentation).

    The model's family writes the file, rows in the order of the shards and of the items
    within them; returns ``out_h5``. ``settings``: the experiment's, which the model file
    must have been trained with. ``split``: the split the shards belong to, stored as the
    file's attribute ``split`` (the analysis of all splits tells their rows apart by it).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    device = select_device(device)
    model, meta = load_model(model_path, device, settings=settings)
    with atomic_path(out_h5) as tmp:
        get_family(meta["model"]).embed(
            model,
            meta,
            model_path,
            shard_paths,
            tmp,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
        )
        if split is not None:
            with h5py.File(tmp, "r+") as h5:
                h5.attrs["split"] = split
    return Path(out_h5)


def write_embeddings(
    out_h5: str | os.PathLike[str],
    features: np.ndarray,
    *,
    sim_id: np.ndarray,
    map_index: np.ndarray,
    params_raw: np.ndarray,
    param_names: Sequence[str],
    fields: Sequence[str],
    model_path: str | os.PathLike[str],
    param_units: Sequence[str] | None = None,
) -> None:
    """Write ``embeddings.h5`` atomically in the layout of the module docstring, the one file
    format that t-SNE and clustering read for every model family."""
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("embeddings", data=features)
        h5.create_dataset("sim_id", data=sim_id)
        h5.create_dataset("map_index", data=map_index)
        h5.create_dataset("params_raw", data=params_raw.astype(np.float32))
        h5.attrs["param_names"] = list(param_names)
        if param_units is not None:
            h5.attrs["param_units"] = list(param_units)
        h5.attrs["fields"] = list(fields)
        h5.attrs["model"] = Path(model_path).name
