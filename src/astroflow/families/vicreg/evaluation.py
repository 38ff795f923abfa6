"""The vicreg evaluations: what the embedding holds, against a supervised embedding and raw
pixels (``evaluation.json``), and how it formed during training (``evolution.json``).

Every score is computed on the same test maps (simulations no model trained on), with
probes fitted on the training maps, so the three embeddings compare row by row:

- (a) the VICReg encoder's embedding, (b) the penultimate features of the cnn2d experiment
  named by ``compare_with`` (a network that saw the parameters), (c) the PCA of the raw
  pixels, of the size of the VICReg embedding;
- kNN and linear-probe R^2 of every parameter (:mod:`astroflow.evaluation.probes`), and of
  the nuisance labels: the map's index within its simulation and its projection axis (CMD
  projects slabs along three axes);
- a moment network on each frozen embedding (:mod:`astroflow.evaluation.moment_probe`);
- the trustworthiness of the t-SNE map that the report shows, on a sample.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch
from sklearn.manifold import trustworthiness
from sklearn.preprocessing import StandardScaler

from astroflow.cluster import effective_perplexity, limit_threads, load_embeddings, pca_features
from astroflow.device import select_device
from astroflow.evaluation.moment_probe import moment_probe
from astroflow.evaluation.outputs import dataset_outputs
from astroflow.evaluation.probes import KNN_NEIGHBORS, knn_r2, pixel_pca, probe_table
from astroflow.families.cnn2d.products import open_for_model
from astroflow.io import write_json
from astroflow.maps.cmd import MAPS_PER_SIM
from astroflow.maps.dataset import ShardDataset
from astroflow.maps.synthetic import SLABS_PER_BOX
from astroflow.modelfile import load_model

log = logging.getLogger(__name__)

TRUST_SAMPLE = 1000
TRUST_NEIGHBORS = 10
BATCH = 256
SPLITS = ("train", "val", "test")


def encoder_features(
    model_path: str | os.PathLike[str],
    shards: Sequence[str],
    device: torch.device,
    snapshot: int | None = None,
) -> np.ndarray:
    """Embeddings (n, D) of the maps of ``shards`` by a model file's ``features`` (a vicreg
    encoder or snapshot, or a cnn2d network's penultimate layer)."""
    model, meta = load_model(model_path, device)
    if snapshot is not None:
        model.encoder = model.snapshots[snapshot]  # the network as it was at that epoch
    dataset = open_for_model(shards, meta, model_path)
    (features,) = dataset_outputs(
        model, dataset, batch_size=BATCH, num_workers=0, device=device, method="features"
    )
    return features


def vicreg_features(
    inputs: Mapping[str, list[str]], split: str, dataset: ShardDataset, device: torch.device
) -> np.ndarray:
    """The encoder's embeddings of one split: read from the per-shard embedding files where
    the analysis made them (``<split>_embeddings``: the same encoder on the same maps, which
    at 10^5 maps is minutes of work not to repeat), else computed."""
    paths = inputs.get(f"{split}_embeddings")
    if not paths:
        return encoder_features(inputs["model"][0], inputs[split], device)
    parts = {"embeddings": [], "sim_id": [], "map_index": []}
    for path in paths:
        with h5py.File(path, "r") as h5:
            for key, values in parts.items():
                values.append(h5[key][...])
    rows = {key: np.concatenate(values) for key, values in parts.items()}
    same = len(rows["sim_id"]) == len(dataset) and (
        np.array_equal(rows["sim_id"], dataset.sim_ids)
        and np.array_equal(rows["map_index"], dataset.map_index)
    )
    if not same:
        raise ValueError(
            f"the {split} embedding files ({paths[0]}, ...) do not hold the maps of the {split} "
            "shards in their order; delete them to have them made again"
        )
    return rows["embeddings"].astype(np.float32)


def nuisance_labels(map_index: np.ndarray) -> np.ndarray:
    """(n, 2) labels that say nothing about the parameters: a map's index within its
    simulation and its projection axis. ``map_index`` (n,) is the row in the CMD file, whose
    maps come simulation by simulation, slabs of one axis after another."""
    within = np.asarray(map_index) % MAPS_PER_SIM
    return np.stack([within, within // SLABS_PER_BOX], axis=1).astype(np.float64)


def evaluate_embeddings(
    inputs: Mapping[str, list[str]],
    output: str | os.PathLike[str],
    *,
    settings: Mapping[str, Any],
    seed: int,
    threads: int | None = None,
) -> dict[str, Any]:
    """Write ``evaluation.json`` (module docstring) and return it.

    ``inputs``: ``model`` (the vicreg model file), ``embeddings`` and ``tsne`` (the test
    embeddings and their t-SNE map), the shards of ``train``, ``val`` and ``test``, their
    per-shard embeddings where the analysis made them (:func:`vicreg_features`), and
    ``supervised_model`` when ``compare_with`` names a cnn2d experiment.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    device = select_device(None)
    names = list(settings["params"])
    data = {s: ShardDataset(inputs[s], settings["fields"], names, in_memory=True) for s in SPLITS}
    scaled = {s: d.targets for s, d in data.items()}
    raw = {s: d.params_raw[:, [d.param_names.index(p) for p in names]] for s, d in data.items()}
    nuisance = {s: nuisance_labels(d.map_index) for s, d in data.items()}

    embeddings = {"vicreg": {s: vicreg_features(inputs, s, data[s], device) for s in SPLITS}}
    if "supervised_model" in inputs:
        embeddings["supervised"] = {
            s: encoder_features(inputs["supervised_model"][0], inputs[s], device) for s in SPLITS
        }
    pixels = {s: d[list(range(len(d)))].x.numpy() for s, d in data.items()}
    dim = embeddings["vicreg"]["train"].shape[1]
    with limit_threads(threads):
        train_pca, other = pixel_pca(
            pixels["train"], np.concatenate([pixels["val"], pixels["test"]]), dim, seed
        )
        n_val = len(pixels["val"])
        embeddings["pixel_pca"] = {"train": train_pca, "val": other[:n_val], "test": other[n_val:]}
        del pixels

        result: dict[str, Any] = {
            "params": names,
            "n_maps": {s: len(d) for s, d in data.items()},
            "knn": {"neighbors": KNN_NEIGHBORS, "metric": "cosine", "weights": "distance"},
            "supervised_experiment": settings.get("compare_with"),
            "probes": {},
            "moment_network": {},
            "nuisance_knn_r2": {},
        }
        for kind, emb in embeddings.items():
            result["probes"][kind] = probe_table(
                emb["train"], raw["train"], emb["test"], raw["test"], names
            )
            result["moment_network"][kind] = moment_probe(emb, scaled, names, seed)
            map_index, axis = knn_r2(emb["train"], nuisance["train"], emb["test"], nuisance["test"])
            result["nuisance_knn_r2"][kind] = {"map_index": map_index, "projection_axis": axis}
        result["trustworthiness"] = tsne_trustworthiness(
            inputs["embeddings"][0], inputs["tsne"][0], seed
        )
    log_table(result)
    write_json(output, result)
    return result


def tsne_trustworthiness(
    embeddings_h5: str, tsne_parquet: str, seed: int, sample: int = TRUST_SAMPLE
) -> dict[str, Any]:
    """Trustworthiness (scikit-learn) of the t-SNE map against the standardized embeddings, on
    a seeded sample of rows: 1 when every neighbour in the map is one in the embedding."""
    data = load_embeddings(embeddings_h5)
    xy = pd.read_parquet(tsne_parquet)[["tsne_x", "tsne_y"]].to_numpy()
    if len(xy) != len(data.embeddings):
        raise ValueError(
            f"{tsne_parquet} has {len(xy)} rows, {embeddings_h5} {len(data.embeddings)}"
        )
    rows = np.random.default_rng(seed).permutation(len(xy))[: min(sample, len(xy))]
    x = StandardScaler().fit_transform(data.embeddings[rows])
    k = min(TRUST_NEIGHBORS, len(rows) // 2 - 1)
    return {
        "value": float(trustworthiness(x, xy[rows], n_neighbors=k)),
        "sample": len(rows),
        "n_neighbors": k,
    }


def log_table(result: Mapping[str, Any]) -> None:
    """One line per parameter: kNN / linear R^2 of every embedding, moment-network R^2."""
    kinds = list(result["probes"])
    log.info("parameter: %s (kNN / linear / moment-net R^2)", ", ".join(kinds))
    for name in result["params"]:
        cells = []
        for kind in kinds:
            p, m = result["probes"][kind][name], result["moment_network"][kind][name]
            cells.append(f"{_f(p['knn_r2'])} / {_f(p['linear_r2'])} / {_f(m['r2'])}")
        log.info("%s: %s", name, ", ".join(cells))
    for kind in kinds:
        n = result["nuisance_knn_r2"][kind]
        log.info(
            "%s nuisance kNN R^2: map index %s, projection axis %s",
            kind,
            _f(n["map_index"]),
            _f(n["projection_axis"]),
        )


def _f(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def embedding_evolution(
    inputs: Mapping[str, list[str]],
    output: str | os.PathLike[str],
    *,
    analysis: Mapping[str, Any],
    seed: int,
    threads: int | None = None,
) -> dict[str, Any]:
    """t-SNE maps of the test embeddings by every encoder snapshot the model file holds and by
    the final encoder, in one frame: the first is initialized by PCA, every later one by the
    previous map (rows are the same maps), so a map moves only as much as its embedding.

    Writes ``{"epochs": [...], "final_epoch": ..., "xy": [[[x, y], ...] per stage], "params":
    {name: values}}``; snapshots of epochs after the saved (best) one are not in the model
    file and are listed under ``missing_epochs``.
    """
    from openTSNE import TSNE
    from openTSNE.initialization import rescale

    if threads is not None:
        torch.set_num_threads(threads)
    device = select_device(None)
    model_path, shards = inputs["model"][0], inputs["test"]
    model, meta = load_model(model_path, "cpu")
    taken = model.snapshot_taken.tolist()
    epochs = [e for e, t in zip(model.snapshot_epochs, taken, strict=True) if t]
    stages = [encoder_features(model_path, shards, device, i) for i, t in enumerate(taken) if t]
    stages.append(encoder_features(model_path, shards, device))
    xy: list[np.ndarray] = []
    with limit_threads(threads):
        for features in stages:
            feats, _ = pca_features(features, analysis["pca_components"], seed)
            init = "pca" if not xy else rescale(xy[-1])
            tsne = TSNE(
                perplexity=effective_perplexity(len(feats), analysis["perplexity"]),
                initialization=init,
                random_state=seed,
                n_jobs=threads or 1,
            )
            xy.append(np.asarray(tsne.fit(feats)))
    dataset = ShardDataset(shards, meta["fields"], meta["params"])
    columns = [dataset.param_names.index(p) for p in meta["params"]]
    result = {
        "epochs": epochs,
        "final_epoch": meta["best_epoch"],
        "missing_epochs": [e for e, t in zip(model.snapshot_epochs, taken, strict=True) if not t],
        "xy": [stage.round(4).tolist() for stage in xy],
        "params": {
            p: dataset.params_raw[:, c].tolist()
            for p, c in zip(meta["params"], columns, strict=True)
        },
    }
    write_json(output, result)
    return result
