"""Look inside a trained network: t-SNE maps and clustering of its embeddings.

Both steps read ``embeddings.h5`` (written by :mod:`astroflow.embed`, one row per map or cube):
``embeddings`` (n, D) float32 features, ``sim_id`` (n,) int64, ``params_raw`` (n, P) float32
physical parameters (the 6 CMD ones, or the 13 of a synthetic core) and attr ``param_names``. Rows
keep their order in every product, so the t-SNE table and the cluster labels line up row by row for
plotting.

Features are standardized and reduced with PCA first: the network's units have arbitrary scales,
and PCA removes noise directions before the (quadratic-in-neighbourhood) t-SNE and before
distance-based clustering.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.neighbors import KNeighborsRegressor
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from astroflow.config import KNN_MAX_FOLDS
from astroflow.evaluation.regression import r2_score
from astroflow.io import atomic_path, string_attr, write_json

KMEANS_N_INIT = 10
"""KMeans restarts: fixed so results depend only on the seed, not on sklearn's default."""


@dataclass(frozen=True)
class Embeddings:
    """Contents of an ``embeddings.h5`` file; arrays share the row axis (one row per map)."""

    embeddings: np.ndarray  # (n, D) float32
    sim_id: np.ndarray  # (n,) int64
    params_raw: np.ndarray  # (n, P) float32, physical units
    param_names: list[str]  # (P,)


def load_embeddings(path: str | os.PathLike[str]) -> Embeddings:
    """Read and validate ``embeddings.h5``; errors name the file and the offending key."""
    path = Path(path)
    with h5py.File(path, "r") as f:
        for key in ("embeddings", "sim_id", "params_raw"):
            if key not in f:
                raise KeyError(f"{path}: missing dataset {key!r} (found {sorted(f.keys())})")
        emb = np.asarray(f["embeddings"][...], dtype=np.float32)
        sim_id = np.asarray(f["sim_id"][...], dtype=np.int64)
        params_raw = np.asarray(f["params_raw"][...], dtype=np.float32)
        names = string_attr(f, "param_names")
    n = emb.shape[0]
    if emb.ndim != 2 or n == 0:
        raise ValueError(f"{path}: 'embeddings' must be a non-empty (n, D) array, got {emb.shape}")
    if sim_id.shape != (n,):
        raise ValueError(f"{path}: 'sim_id' has shape {sim_id.shape}, expected ({n},)")
    if params_raw.shape != (n, len(names)):
        raise ValueError(
            f"{path}: 'params_raw' has shape {params_raw.shape}, expected ({n}, {len(names)}) "
            f"for param_names {names}"
        )
    if not np.all(np.isfinite(emb)):
        raise ValueError(f"{path}: 'embeddings' contains non-finite values")
    return Embeddings(emb, sim_id, params_raw, names)


def pca_features(embeddings: np.ndarray, n_components: int, seed: int) -> tuple[np.ndarray, PCA]:
    """Standardize each feature, then project (n, D) -> (n, k) with k = min(n_components, n, D).

    Standardizing first keeps a few large-valued units from dominating the principal axes.
    """
    x = StandardScaler().fit_transform(np.asarray(embeddings, dtype=np.float64))
    k = max(1, min(n_components, x.shape[0], x.shape[1]))
    pca = PCA(n_components=k, random_state=seed)
    return pca.fit_transform(x), pca


def limit_threads(n_jobs: int | None) -> contextlib.AbstractContextManager:
    """Cap BLAS/OpenMP threads (PCA, KMeans) at the job's allocation.

    Left alone, these libraries start one thread per visible core; on a shared node, or a
    cluster job given fewer cores than the machine has, the oversubscribed threads spin and
    KMeans runs orders of magnitude slower. ``None`` or a negative value leaves the default.
    """
    if n_jobs is None or n_jobs < 1:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n_jobs)


def effective_perplexity(n_samples: int, perplexity: float) -> float:
    """Cap the perplexity at (n - 1) / 3 so the 3*perplexity neighbour lists fit in small sets."""
    if n_samples < 4:
        raise ValueError(f"t-SNE needs at least 4 samples, got {n_samples}")
    return float(min(perplexity, (n_samples - 1) / 3))


def tsne(
    embeddings_h5: str | os.PathLike[str],
    out_parquet: str | os.PathLike[str],
    *,
    pca_components: int,
    perplexity: float,
    seed: int,
    n_jobs: int,
) -> pd.DataFrame:
    """Embed the maps in 2D with openTSNE and write one parquet row per map (input row order).

    Columns: ``tsne_x``, ``tsne_y`` (arbitrary units), ``sim_id`` and one column per parameter
    name with its physical value, so figures can colour points without reopening the HDF5 file.
    The PCA initialisation and the fixed ``random_state`` make the layout reproducible.
    """
    from openTSNE import TSNE  # heavy import (numba kernels); only this step needs it

    data = load_embeddings(embeddings_h5)
    with limit_threads(n_jobs):
        feats, _ = pca_features(data.embeddings, pca_components, seed)
    model = TSNE(
        n_components=2,
        perplexity=effective_perplexity(len(feats), perplexity),
        initialization="pca",
        random_state=seed,
        n_jobs=n_jobs,
        verbose=False,
    )
    xy = np.asarray(model.fit(feats))
    table = pd.DataFrame({"tsne_x": xy[:, 0], "tsne_y": xy[:, 1], "sim_id": data.sim_id})
    for j, name in enumerate(data.param_names):
        table[name] = data.params_raw[:, j]
    with atomic_path(out_parquet) as tmp:
        table.to_parquet(tmp, engine="pyarrow", index=False)
    return table


def knn_r2(
    features: np.ndarray, target: np.ndarray, groups: np.ndarray, n_neighbors: int
) -> float | None:
    """Out-of-fold R^2 of a k-nearest-neighbour regression of ``target`` (n,) on ``features``.

    Folds are grouped (GroupKFold on ``groups``, the simulation ids): the maps of one simulation
    share every parameter and sit close together in feature space, so letting them straddle
    folds would reward memorising simulations instead of encoding the parameter.
    R^2 is computed once over the pooled out-of-fold predictions (None for a constant target).
    """
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"knn R^2 needs at least 2 simulations, got {n_groups}")
    folds = GroupKFold(n_splits=min(KNN_MAX_FOLDS, n_groups))
    smallest_train = min(len(train) for train, _ in folds.split(features, target, groups))
    if n_neighbors > smallest_train:
        # Clipping would score another setting than the one recorded: refuse instead.
        raise ValueError(
            f"knn_neighbors={n_neighbors} but a fold of {len(features)} items trains on "
            f"{smallest_train}; choose analysis.knn_neighbors <= {smallest_train}"
        )
    regressor = KNeighborsRegressor(n_neighbors=n_neighbors)
    predicted = cross_val_predict(regressor, features, target, groups=groups, cv=folds)
    return r2_score(target, predicted)


def cluster(
    embeddings_h5: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    *,
    n_clusters: int,
    pca_components: int,
    silhouette_sample: int,
    knn_neighbors: int,
    seed: int,
    n_jobs: int | None = None,
    knn_param: str = "Omega_m",
) -> dict[str, Any]:
    """KMeans on the PCA features plus two scores, written as JSON and returned.

    ``silhouette`` (on a seeded subsample of ``min(n, silhouette_sample)`` rows: the exact score
    is quadratic in n) says how separated the clusters are; ``knn_r2_<knn_param>`` (lower case,
    e.g. ``knn_r2_omega_m``) says how smoothly the embedding encodes that parameter (see
    :func:`knn_r2`). ``labels`` follow the input row order. PCA is fitted on all rows: it never
    sees the parameter, so the cross-validated score stays honest.
    ``knn_r2_by_param`` gives the same score for every parameter of the file: which ones the
    embedding encodes, and which it ignores (a negative score: worse than the mean).
    ``n_jobs`` caps the threads used (pass the job's core count; see :func:`limit_threads`).
    """
    data = load_embeddings(embeddings_h5)
    n = len(data.embeddings)
    if not 2 <= n_clusters < n:
        raise ValueError(f"{embeddings_h5}: n_clusters={n_clusters} must be in [2, {n - 1}]")
    if knn_param not in data.param_names:
        raise KeyError(f"{embeddings_h5}: {knn_param!r} not in param_names {data.param_names}")

    sample_size = min(n, silhouette_sample)
    with limit_threads(n_jobs):
        feats, pca = pca_features(data.embeddings, pca_components, seed)
        kmeans = KMeans(n_clusters=n_clusters, n_init=KMEANS_N_INIT, random_state=seed)
        labels = kmeans.fit_predict(feats).astype(np.int64)
        silhouette = silhouette_score(feats, labels, sample_size=sample_size, random_state=seed)
        by_param = {
            name: knn_r2(
                feats, data.params_raw[:, j].astype(np.float64), data.sim_id, knn_neighbors
            )
            for j, name in enumerate(data.param_names)
        }

    result = {
        "n_samples": n,
        "n_clusters": n_clusters,
        "pca_components": int(pca.n_components_),
        "pca_explained_variance": float(pca.explained_variance_ratio_.sum()),
        "silhouette": float(silhouette),
        "silhouette_sample_size": sample_size,
        "inertia": float(kmeans.inertia_),
        "cluster_sizes": np.bincount(labels, minlength=n_clusters).tolist(),
        f"knn_r2_{knn_param.lower()}": by_param[knn_param],
        "knn_r2_by_param": by_param,
        "knn_neighbors": knn_neighbors,
        "seed": seed,
        "labels": labels.tolist(),
    }
    write_json(out_json, result)
    return result
