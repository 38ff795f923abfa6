"""Penultimate-layer embeddings of shard maps, for t-SNE and clustering downstream.

:func:`embed` serves every model family (cnn3d: one row per cube, written by
:func:`astroflow.cubes.predict.embed_cubes` in the same layout). Product of a cnn2d:
``embeddings.h5`` with datasets ``embeddings`` (n, D) float32, ``sim_id`` and ``map_index`` (n,)
int64, ``params_raw`` (n, 6) float32 physical parameters, and attributes ``param_names`` (the 6
names, column order of ``params_raw``) and ``fields``; cube embeddings add ``param_units``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from astroflow.device import select_device
from astroflow.engine.loader import eval_loader
from astroflow.infer import open_for_model
from astroflow.io import atomic_path
from astroflow.tasks import get_task
from astroflow.train import collect_outputs, load_model

log = logging.getLogger(__name__)


def embed(
    model_path: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    out_h5: str | os.PathLike[str],
    batch_size: int = 64,
    *,
    num_workers: int = 0,
    threads: int | None = None,
    device: str | None = None,
) -> Path:
    """Write ``model.features`` of every item of ``shard_paths`` (eval mode, no augmentation).

    The model's family writes the file (:func:`embed_maps` for cnn2d, one row per map;
    :func:`astroflow.cubes.predict.embed_cubes` for cnn3d, one row per cube), rows in the
    order of the shards and of the items within them; returns ``out_h5``.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    device = select_device(device)
    model, meta = load_model(model_path, device)
    get_task(meta["model"]).product_writer("embeddings")(
        model,
        meta,
        model_path,
        shard_paths,
        out_h5,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
    )
    return Path(out_h5)


def embed_maps(
    model: nn.Module,
    meta: Mapping[str, Any],
    model_path: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    out_h5: str | os.PathLike[str],
    *,
    batch_size: int,
    num_workers: int,
    device: torch.device,
) -> None:
    """Penultimate features of every map, with its simulation's parameters."""
    dataset = open_for_model(shard_paths, meta, model_path)
    loader = eval_loader(dataset, batch_size, device, num_workers)
    (features,) = collect_outputs(model, loader, device, method="features")
    write_embeddings(
        out_h5,
        features,
        sim_id=dataset.sim_ids,
        map_index=dataset.map_index,
        params_raw=dataset.params_raw,
        param_names=dataset.param_names,
        fields=meta["fields"],
        model_path=model_path,
    )
    log.info("embedded %d maps into %d dimensions", *features.shape)


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
