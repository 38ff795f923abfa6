"""Classifier products: class probabilities of every test map from the CNN and from the
P(k)-and-moments baseline, their metrics side by side, and embeddings.

``predictions.h5``: ``probabilities`` and ``baseline_probabilities`` (n, K) float32, ``label``,
``sim_id``, ``map_index`` (n,) int64, and for the report ``example_maps`` (k, C, N, N) with
``example_index`` (k,): per true class the maps the CNN is most and least sure of; attributes
``class_names`` and ``fields``. ``metrics.json``: ``n_maps``, and for ``network`` and
``baseline`` the :func:`~astroflow.evaluation.classification.classification_metrics`.
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
from astroflow.evaluation.classification import (
    classification_metrics,
    spectral_baseline_probabilities,
    spectral_features,
)
from astroflow.evaluation.outputs import dataset_outputs
from astroflow.families.classifier.data import BOX_UNITS, ClassDataset, class_dataset
from astroflow.io import atomic_path, write_json

log = logging.getLogger(__name__)

EXAMPLES_PER_CLASS = 4
"""Most and least confident maps of each true class kept for the report (each)."""


def open_for_model(
    shard_paths: Sequence[str | os.PathLike[str]],
    meta: Mapping[str, Any],
    model_path: str | os.PathLike[str],
) -> ClassDataset:
    """Both classes of the test maps, built as in training; another map size is an error."""
    dataset = class_dataset(shard_paths, meta["settings"])
    trained = meta["arch"]["map_size"]
    if dataset.map_size != trained:
        raise ValueError(
            f"{dataset.paths[0]}: maps of {dataset.map_size} pixels, but model {model_path} "
            f"was trained on {trained} (key 'arch.map_size')"
        )
    return dataset


def predict_classes(
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
    """Probabilities of the CNN and of the baseline for both classes of every test map."""
    dataset = open_for_model(shard_paths, meta, model_path)
    (logits,) = dataset_outputs(
        model, dataset, batch_size=batch_size, num_workers=num_workers, device=device
    )
    probabilities = torch.softmax(torch.from_numpy(logits).double(), dim=1).float().numpy()
    features = spectral_features(dataset.maps, BOX_UNITS)
    baseline = spectral_baseline_probabilities(meta["baseline"], features, len(probabilities[0]))
    labels = dataset.targets
    metrics = {
        "n_maps": len(dataset),
        "class_names": list(meta["class_names"]),
        "network": classification_metrics(probabilities, labels),
        "baseline": classification_metrics(baseline, labels),
    }
    examples = confident_examples(probabilities, labels)
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("probabilities", data=probabilities)
        h5.create_dataset("baseline_probabilities", data=baseline)
        h5.create_dataset("label", data=labels)
        h5.create_dataset("sim_id", data=dataset.sim_ids)
        h5.create_dataset("map_index", data=dataset.map_index)
        h5.create_dataset("example_maps", data=dataset.maps[examples])
        h5.create_dataset("example_index", data=examples)
        h5.attrs["class_names"] = list(meta["class_names"])
        h5.attrs["fields"] = list(meta["fields"])
        h5.attrs["model"] = Path(model_path).name
    write_json(out_metrics, metrics)
    for name in ("network", "baseline"):
        m = metrics[name]
        log.info(
            "%s: accuracy %.3f, ROC AUC %.3f, Brier %.3f",
            name,
            m["accuracy"],
            m["roc_auc"],
            m["brier"],
        )
    return metrics


def confident_examples(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices of the most and the least confident maps of each true class (by the
    probability given to the true class), sorted."""
    picked = []
    truth_probability = probabilities[np.arange(len(labels)), labels]
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        order = rows[np.argsort(truth_probability[rows], kind="stable")]
        picked += [*order[:EXAMPLES_PER_CLASS], *order[-EXAMPLES_PER_CLASS:]]
    return np.unique(np.asarray(picked, dtype=np.int64))


def embed_classes(
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
    """Penultimate features of both classes of every test map; ``class`` is the last column
    of ``params_raw``, after the simulation's parameters."""
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
        params_raw=np.column_stack([dataset.params_raw, dataset.targets]),
        param_names=[*dataset.param_names, "class"],
        fields=meta["fields"],
        model_path=model_path,
    )
    log.info("embedded %d maps into %d dimensions", *features.shape)
