"""Predict parameters of shard maps with a trained model and score them in physical units.

:func:`predict` serves every model family (its task writes the products); this module holds the
cnn2d ones (cnn3d: :mod:`astroflow.cubes.predict`). Products of a cnn2d: ``predictions.h5`` with
datasets ``mean``, ``std``, ``truth`` (n, P) float32 in physical units, ``sim_id`` and ``map_index``
(n,) int64, and attributes ``param_names`` (P) and ``fields``; ``metrics.json`` with ``n_maps`` and,
under ``params``, one entry per parameter (:func:`regression_metrics`).
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
from astroflow.io import atomic_path, write_json
from astroflow.maps.dataset import ShardDataset, unscale, unscale_sigma
from astroflow.tasks import get_task
from astroflow.train import collect_outputs, load_model

log = logging.getLogger(__name__)


def predict(
    model_path: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    out_h5: str | os.PathLike[str],
    out_metrics: str | os.PathLike[str],
    batch_size: int = 64,
    *,
    num_workers: int = 0,
    threads: int | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Predict every item of ``shard_paths`` with a trained model; write predictions and metrics.

    The model file says which family it is (``model``), and the family's task writes the
    products: :func:`predict_maps` for cnn2d, :func:`astroflow.cubes.predict.predict_profiles`
    for cnn3d. Returns the metrics dictionary written to ``out_metrics``.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    device = select_device(device)
    model, meta = load_model(model_path, device)
    return get_task(meta["model"]).product_writer("predictions")(
        model,
        meta,
        model_path,
        shard_paths,
        out_h5,
        out_metrics,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
    )


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
    loader = eval_loader(dataset, batch_size, device, num_workers)
    mean_scaled, std_scaled = collect_outputs(model, loader, device)

    names = meta["params"]
    mean = unscale(mean_scaled, names)
    std = unscale_sigma(std_scaled, names)
    columns = [dataset.param_names.index(p) for p in names]
    truth = dataset.params_raw[:, columns]

    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("mean", data=mean)
        h5.create_dataset("std", data=std)
        h5.create_dataset("truth", data=truth)
        h5.create_dataset("sim_id", data=dataset.sim_ids)
        h5.create_dataset("map_index", data=dataset.map_index)
        h5.attrs["param_names"] = list(names)
        h5.attrs["fields"] = list(meta["fields"])
        h5.attrs["model"] = Path(model_path).name

    metrics = {"n_maps": len(dataset), "params": regression_metrics(mean, std, truth, names)}
    write_json(out_metrics, metrics)
    for name, m in metrics["params"].items():
        r2 = "undefined" if m["r2"] is None else f"{m['r2']:.3f}"
        within = m["frac_within_1sigma"]
        log.info("%s: R^2 %s, rmse %.4g, within 1 sigma %.2f", name, r2, m["rmse"], within)
    return metrics


def regression_metrics(
    mean: np.ndarray, std: np.ndarray, truth: np.ndarray, names: Sequence[str]
) -> dict[str, dict[str, float | None]]:
    """Per-parameter scores of predictions ``mean`` +- ``std`` against ``truth``, all (n, P).

    For each name: ``rmse``; ``r2`` = 1 - SS_res / SS_tot (1 is perfect, 0 is no better than
    the mean of the truth); ``mean_relative_error`` = mean |mean - truth| / |truth|;
    ``mean_sigma`` = mean predicted std; ``frac_within_1sigma`` = fraction of maps with
    |mean - truth| <= std, about 0.68 for calibrated Gaussian errors. ``r2`` is None when the
    truth does not vary (one simulation), where it is undefined.
    """
    mean, std, truth = (np.asarray(a, dtype=np.float64) for a in (mean, std, truth))
    if not mean.shape == std.shape == truth.shape or mean.ndim != 2:
        raise ValueError(
            f"mean, std, truth must share one (n, P) shape, got {mean.shape}, {std.shape}, "
            f"{truth.shape}"
        )
    if mean.shape[1] != len(names):
        raise ValueError(f"{mean.shape[1]} parameter columns but {len(names)} names {names}")
    err = mean - truth
    ss_res = (err**2).sum(axis=0)
    ss_tot = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    out = {}
    for j, name in enumerate(names):
        out[name] = {
            "rmse": float(np.sqrt(np.mean(err[:, j] ** 2))),
            "r2": float(1.0 - ss_res[j] / ss_tot[j]) if ss_tot[j] > 0 else None,
            "mean_relative_error": float(np.mean(np.abs(err[:, j]) / np.abs(truth[:, j]))),
            "mean_sigma": float(np.mean(std[:, j])),
            "frac_within_1sigma": float(np.mean(np.abs(err[:, j]) <= std[:, j])),
        }
    return out


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
