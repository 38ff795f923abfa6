"""Penultimate-layer embeddings of shard maps, for t-SNE and clustering downstream.

Product: ``embeddings.h5`` with datasets ``embeddings`` (n, D) float32, ``sim_id`` and
``map_index`` (n,) int64, ``params_raw`` (n, 6) float32 physical parameters, and attributes
``param_names`` (the 6 names, column order of ``params_raw``) and ``fields``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import torch

from astroflow.device import select_device
from astroflow.engine.loader import eval_loader
from astroflow.infer import open_for_model
from astroflow.io import atomic_path
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
    """Write ``model.features`` of every map of ``shard_paths`` (eval mode, no augmentation).

    Rows follow the order of the shards and of the maps within them; returns ``out_h5``.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    device = select_device(device)
    model, meta = load_model(model_path, device)
    dataset = open_for_model(shard_paths, meta, model_path)
    loader = eval_loader(dataset, batch_size, device, num_workers)
    (features,) = collect_outputs(model, loader, device, method="features")

    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("embeddings", data=features)
        h5.create_dataset("sim_id", data=dataset.sim_ids)
        h5.create_dataset("map_index", data=dataset.map_index)
        h5.create_dataset("params_raw", data=dataset.params_raw)
        h5.attrs["param_names"] = list(dataset.param_names)
        h5.attrs["fields"] = list(meta["fields"])
        h5.attrs["model"] = Path(model_path).name
    log.info("embedded %d maps into %d dimensions", *features.shape)
    return Path(out_h5)
