"""cnn2d products: posterior mean and std of every test map with their metrics, and
penultimate-layer embeddings of every test map.

``predictions.h5`` holds datasets ``mean``, ``std``, ``truth`` (n, P) float32 in physical
units, ``sim_id`` and ``map_index`` (n,) int64, ``outside_training_ranges`` (n,) bool (a
parameter of the map's simulation lies outside the LH ranges: 1P, EX and BE sets), and
attributes ``param_names`` (P) and ``fields``; ``metrics.json`` holds ``n_maps``,
``n_outside_training_ranges`` and, under ``params``, one entry per parameter
(:func:`~astroflow.evaluation.regression.regression_metrics`). Embeddings are written in the
layout of :mod:`astroflow.embed`, one row per map.
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

from astroflow.embed import write_embeddings
from astroflow.evaluation.outputs import dataset_outputs
from astroflow.evaluation.regression import regression_metrics
from astroflow.io import atomic_path, write_json
from astroflow.maps import cmd
from astroflow.maps.dataset import ShardDataset, unscale, unscale_sigma

log = logging.getLogger(__name__)


def predict_maps(
    model: nn.Module,
    meta: Mapping[str, Any],
    model_path: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    out_h5: str | os.PathLike[str],
    out_metrics: str | os.PathLike[str],
    *,
    batch_size: int,
    num_workers: int,
    device: torch.device,
) -> dict[str, Any]:
    """Posterior mean and std of every map (no augmentation), and their metrics.

    The network's scaled outputs are mapped back to physical units with the LH ranges; the
    truth is the shards' ``params_raw``.
    """
    dataset = open_for_model(shard_paths, meta, model_path)
    mean_scaled, std_scaled = dataset_outputs(
        model, dataset, batch_size=batch_size, num_workers=num_workers, device=device
    )

    names = meta["params"]
    mean = unscale(mean_scaled, names)
    std = unscale_sigma(std_scaled, names)
    columns = [dataset.param_names.index(p) for p in names]
    truth = dataset.params_raw[:, columns]
    outside = cmd.outside_lh_ranges(dataset.params_raw)

    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("mean", data=mean)
        h5.create_dataset("std", data=std)
        h5.create_dataset("truth", data=truth)
        h5.create_dataset("sim_id", data=dataset.sim_ids)
        h5.create_dataset("map_index", data=dataset.map_index)
        h5.create_dataset("outside_training_ranges", data=outside)
        h5.attrs["param_names"] = list(names)
        h5.attrs["fields"] = list(meta["fields"])
        h5.attrs["model"] = Path(model_path).name

    metrics = {
        "n_maps": len(dataset),
        "n_outside_training_ranges": int(outside.sum()),
        "params": regression_metrics(mean, std, truth, names),
    }
    write_json(out_metrics, metrics)
    if outside.any():
        log.warning(
            "%d of %d maps have parameters outside the LH ranges the network was trained on: "
            "their predictions are extrapolations (flag outside_training_ranges in %s)",
            int(outside.sum()),
            len(dataset),
            out_h5,
        )
    for name, m in metrics["params"].items():
        r2 = "undefined" if m["r2"] is None else f"{m['r2']:.3f}"
        within = m["frac_within_1sigma"]
        log.info("%s: R^2 %s, rmse %.4g, within 1 sigma %.2f", name, r2, m["rmse"], within)
    return metrics


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
    (features,) = dataset_outputs(
        model,
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        method="features",
    )
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


def open_for_model(
    shard_paths: Sequence[str | os.PathLike[str]],
    meta: Mapping[str, Any],
    model_path: str | os.PathLike[str],
) -> ShardDataset:
    """The model's fields and parameters from ``shard_paths``, checked against the model.

    A map size other than the one trained on is an error; a different normalization (shards of
    another dataset) is allowed, as applying a model across simulation suites is a standard
    robustness test, but it is logged as a warning.
    """
    dataset = ShardDataset(shard_paths, meta["fields"], meta["params"])
    trained = meta["arch"]["map_size"]
    if dataset.map_size != trained:
        raise ValueError(
            f"{dataset.paths[0]}: maps of {dataset.map_size} pixels, but model {model_path} "
            f"was trained on {trained} (key 'arch.map_size')"
        )
    norm = meta.get("normalization")
    if norm is not None and not (
        np.allclose(dataset.field_mean, norm["mean"])
        and np.allclose(dataset.field_std, norm["std"])
    ):
        log.warning(
            "shards %s are standardized with mean %s std %s but model %s was trained with "
            "mean %s std %s",
            dataset.paths[0],
            dataset.field_mean.tolist(),
            dataset.field_std.tolist(),
            model_path,
            norm["mean"],
            norm["std"],
        )
    return dataset
