"""t-SNE and clustering of embeddings with known structure: blobs, a smooth Omega_m code, noise."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import KNeighborsClassifier

from astroflow.cluster import cluster, effective_perplexity, limit_threads, load_embeddings, tsne
from astroflow.maps.cmd import LH_RANGES, PARAM_NAMES

MAPS_PER_SIM = 5  # fewer than CMD's 15 keeps the tests fast; grouping logic is the same


def sim_params(n_sims: int, rng: np.random.Generator) -> np.ndarray:
    """(n_sims, 6) physical parameters drawn uniformly inside the LH ranges."""
    lo = np.array([LH_RANGES[p][0] for p in PARAM_NAMES])
    hi = np.array([LH_RANGES[p][1] for p in PARAM_NAMES])
    return lo + (hi - lo) * rng.random((n_sims, len(PARAM_NAMES)))


def write_embeddings(path: Path, emb: np.ndarray, sim_id: np.ndarray, params: np.ndarray) -> Path:
    """Write the embeddings.h5 format: one row per map, params_raw repeated per simulation."""
    with h5py.File(path, "w") as f:
        f["embeddings"] = emb.astype(np.float32)
        f["sim_id"] = sim_id.astype(np.int64)
        f["params_raw"] = params.astype(np.float32)
        f.attrs["param_names"] = list(PARAM_NAMES)
    return path


def blob_embeddings(path: Path, n_blobs: int = 4, n_sims: int = 60, dim: int = 24, seed: int = 0):
    """Each simulation belongs to one of ``n_blobs`` far-apart Gaussian blobs in ``dim`` dims.

    Returns (path, blob label per row).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 10.0, (n_blobs, dim))
    sim_blob = np.arange(n_sims) % n_blobs
    sim_id = np.repeat(np.arange(n_sims), MAPS_PER_SIM)
    blob = sim_blob[sim_id]
    emb = centres[blob] + rng.normal(0.0, 1.0, (len(sim_id), dim))
    params = sim_params(n_sims, rng)[sim_id]
    return write_embeddings(path, emb, sim_id, params), blob


def run_cluster(path: Path, out: Path, **overrides) -> dict:
    kwargs = dict(
        n_clusters=4,
        pca_components=10,
        silhouette_sample=10_000,
        knn_neighbors=10,
        seed=3,
        n_jobs=1,
    )
    kwargs.update(overrides)
    return cluster(path, out, **kwargs)


def test_kmeans_recovers_separated_blobs(tmp_path):
    path, blob = blob_embeddings(tmp_path / "emb.h5")
    out = tmp_path / "clusters.json"
    result = run_cluster(path, out)

    assert json.loads(out.read_text()) == result
    assert adjusted_rand_score(blob, result["labels"]) == pytest.approx(1.0)
    assert result["silhouette"] > 0.7
    assert sorted(result["cluster_sizes"]) == [75, 75, 75, 75]
    assert result["n_samples"] == len(blob) == sum(result["cluster_sizes"])
    assert result["inertia"] > 0


def test_silhouette_is_subsampled_and_close_to_exact(tmp_path):
    path, _ = blob_embeddings(tmp_path / "emb.h5")
    exact = run_cluster(path, tmp_path / "a.json", silhouette_sample=10_000)
    sampled = run_cluster(path, tmp_path / "b.json", silhouette_sample=120)
    assert exact["silhouette_sample_size"] == 300
    assert sampled["silhouette_sample_size"] == 120
    assert sampled["silhouette"] == pytest.approx(exact["silhouette"], abs=0.05)
    # Same seed -> same labels and the same sampled score.
    again = run_cluster(path, tmp_path / "c.json", silhouette_sample=120)
    assert again["labels"] == sampled["labels"]
    assert again["silhouette"] == sampled["silhouette"]


def test_knn_r2_high_when_embedding_encodes_omega_m(tmp_path):
    rng = np.random.default_rng(1)
    n_sims = 80
    params = sim_params(n_sims, rng)
    sim_id = np.repeat(np.arange(n_sims), MAPS_PER_SIM)
    om = params[sim_id, 0]
    # A smooth curve in 16 dims parametrised by Omega_m, plus per-map scatter.
    phase = 2.0 * np.pi * (om - 0.1) / 0.4
    basis = np.stack([np.cos(phase * (k + 1) / 4) for k in range(8)], axis=1)
    curve = np.concatenate([basis, np.sin(phase[:, None] * np.arange(1, 9) / 8)], axis=1)
    emb = 5.0 * curve + rng.normal(0.0, 0.1, curve.shape)
    path = write_embeddings(tmp_path / "emb.h5", emb, sim_id, params[sim_id])
    result = run_cluster(path, tmp_path / "clusters.json", n_clusters=3)
    assert result["knn_r2_omega_m"] > 0.9


def test_knn_r2_near_zero_for_noise(tmp_path):
    rng = np.random.default_rng(2)
    n_sims = 80
    params = sim_params(n_sims, rng)
    sim_id = np.repeat(np.arange(n_sims), MAPS_PER_SIM)
    emb = rng.normal(size=(len(sim_id), 16))
    path = write_embeddings(tmp_path / "emb.h5", emb, sim_id, params[sim_id])
    result = run_cluster(path, tmp_path / "clusters.json", n_clusters=3)
    assert result["knn_r2_omega_m"] < 0.1


def test_knn_folds_grouped_by_simulation(tmp_path):
    """An embedding that only identifies the simulation must not score: siblings share a fold."""
    rng = np.random.default_rng(3)
    n_sims = 80
    params = sim_params(n_sims, rng)
    sim_id = np.repeat(np.arange(n_sims), MAPS_PER_SIM)
    sim_code = rng.normal(size=(n_sims, 16))
    emb = sim_code[sim_id] + rng.normal(0.0, 0.01, (len(sim_id), 16))
    path = write_embeddings(tmp_path / "emb.h5", emb, sim_id, params[sim_id])
    result = run_cluster(path, tmp_path / "clusters.json", n_clusters=3, knn_neighbors=4)
    # With map-level folds the 4 nearest neighbours would be siblings and R^2 would be ~1.
    assert result["knn_r2_omega_m"] < 0.2


def test_tsne_keeps_blobs_apart_and_is_deterministic(tmp_path):
    path, blob = blob_embeddings(tmp_path / "emb.h5", n_sims=48)
    kwargs = dict(pca_components=10, perplexity=30, seed=7, n_jobs=1)
    table = tsne(path, tmp_path / "a.parquet", **kwargs)
    again = tsne(path, tmp_path / "b.parquet", **kwargs)

    on_disk = pd.read_parquet(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(on_disk, table)
    assert list(table.columns) == ["tsne_x", "tsne_y", "sim_id", *PARAM_NAMES]
    assert table["sim_id"].dtype == np.int64
    data = load_embeddings(path)
    np.testing.assert_array_equal(table["sim_id"].to_numpy(), data.sim_id)
    np.testing.assert_array_equal(table[list(PARAM_NAMES)].to_numpy(), data.params_raw)

    np.testing.assert_array_equal(table[["tsne_x", "tsne_y"]], again[["tsne_x", "tsne_y"]])

    xy = table[["tsne_x", "tsne_y"]].to_numpy()
    knn = KNeighborsClassifier(n_neighbors=6).fit(xy, blob)
    # Each point's neighbours (itself excluded) in the 2D map come from its own blob.
    _, idx = knn.kneighbors(xy)
    same = blob[idx[:, 1:]] == blob[:, None]
    assert same.mean() > 0.99


def test_tsne_small_set_caps_perplexity(tmp_path):
    path, _ = blob_embeddings(tmp_path / "emb.h5", n_blobs=2, n_sims=4)  # 20 rows
    table = tsne(path, tmp_path / "t.parquet", pca_components=5, perplexity=30, seed=0, n_jobs=1)
    assert len(table) == 20
    assert np.all(np.isfinite(table[["tsne_x", "tsne_y"]].to_numpy()))
    assert effective_perplexity(20, 30) == pytest.approx(19 / 3)
    assert effective_perplexity(1000, 30) == 30
    with pytest.raises(ValueError, match="at least 4"):
        effective_perplexity(3, 30)


def test_missing_dataset_names_file_and_key(tmp_path):
    path = tmp_path / "broken.h5"
    with h5py.File(path, "w") as f:
        f["embeddings"] = np.zeros((10, 4), np.float32)
        f["params_raw"] = np.zeros((10, 6), np.float32)
        f.attrs["param_names"] = list(PARAM_NAMES)
    out = tmp_path / "clusters.json"
    with pytest.raises(KeyError, match=r"broken\.h5.*sim_id"):
        run_cluster(path, out)
    assert not out.exists()
    with pytest.raises(KeyError, match=r"broken\.h5.*sim_id"):
        tsne(path, tmp_path / "t.parquet", pca_components=2, perplexity=5, seed=0, n_jobs=1)
    assert list(tmp_path.iterdir()) == [path]


def test_mismatched_rows_rejected(tmp_path):
    path = write_embeddings(tmp_path / "emb.h5", np.zeros((10, 4)), np.arange(9), np.zeros((10, 6)))
    with pytest.raises(ValueError, match=r"emb\.h5.*sim_id"):
        load_embeddings(path)


def test_limit_threads_caps_openmp_and_blas_pools():
    from threadpoolctl import threadpool_info

    def threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info()]

    default = threads()
    with limit_threads(1):
        assert set(threads()) == {1}
    with limit_threads(None):
        assert threads() == default
    assert threads() == default


def test_knn_scores_the_requested_parameter(tmp_path):
    """An embedding that encodes sigma_8 and not Omega_m: the score follows ``knn_param``."""
    rng = np.random.default_rng(2)
    n_sims = 60
    params = sim_params(n_sims, rng)
    sim_id = np.repeat(np.arange(n_sims), MAPS_PER_SIM)
    s8 = params[sim_id, 1]
    emb = np.stack([s8, s8**2, np.sin(5 * s8)], axis=1) * 10 + rng.normal(0, 0.05, (len(s8), 3))
    path = write_embeddings(tmp_path / "emb.h5", emb, sim_id, params[sim_id])
    by_s8 = run_cluster(path, tmp_path / "s8.json", n_clusters=3, knn_param="sigma_8")
    by_om = run_cluster(path, tmp_path / "om.json", n_clusters=3)
    assert by_s8["knn_r2_sigma_8"] > 0.9 and "knn_r2_omega_m" not in by_s8
    assert by_om["knn_r2_omega_m"] < 0.2
    # Every parameter is scored, whichever one heads the file: only sigma_8 is encoded.
    assert by_om["knn_r2_by_param"] == by_s8["knn_r2_by_param"]
    scores = by_om["knn_r2_by_param"]
    assert list(scores) == list(PARAM_NAMES)
    assert scores["sigma_8"] == by_s8["knn_r2_sigma_8"]
    assert all(r2 < 0.2 for name, r2 in scores.items() if name != "sigma_8"), scores
    with pytest.raises(KeyError, match="'central_density' not in param_names"):
        run_cluster(path, tmp_path / "x.json", knn_param="central_density")
