"""The chunked embedding analysis: every map of every shard file in the products, the
streaming PCA equal to the in-memory one, and time and memory logged per stage."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from astroflow.embed import write_embeddings
from astroflow.embedding_analysis import analyse, reduce

NAMES = ["Omega_m", "sigma_8"]


def write_files(directory, n_files=4, rows=90, dim=12, seed=0):
    rng = np.random.default_rng(seed)
    paths, everything = [], []
    for i in range(n_files):
        sim = np.arange(rows) // 15 + 100 * i
        params = rng.uniform(0, 1, (sim.max() + 1, 2)).astype(np.float32)[sim]
        features = np.column_stack([params, params**2]) @ rng.standard_normal((4, dim))
        features += 0.01 * rng.standard_normal(features.shape)
        path = directory / f"{i:03d}.h5"
        write_embeddings(
            path,
            features.astype(np.float32),
            sim_id=sim,
            map_index=np.arange(rows) % 15,
            params_raw=params,
            param_names=NAMES,
            fields=["Mgas"],
            model_path="model.pt",
        )
        with h5py.File(path, "r+") as h5:
            h5.attrs["split"] = "train" if i < n_files - 1 else "test"
        paths.append(path)
        everything.append(features.astype(np.float32))
    return paths, np.concatenate(everything)


def test_streaming_pca_matches_the_in_memory_pca(tmp_path):
    paths, x = write_files(tmp_path)
    reduced, table, pca = reduce(paths, n_components=4, rows=50, seed=0)
    assert reduced.shape == (len(x), 4) and len(table) == len(x)
    reference = PCA(4).fit(StandardScaler().fit_transform(x.astype(np.float64)))
    np.testing.assert_allclose(
        pca.explained_variance_ratio_, reference.explained_variance_ratio_, rtol=0.02
    )
    assert table["split"].tolist() == ["train"] * 270 + ["test"] * 90
    assert table["sim_id"].iloc[-1] == 305 and list(table.columns[-2:]) == NAMES


def test_the_analysis_writes_every_map_and_logs_time_and_memory(tmp_path):
    paths, x = write_files(tmp_path)
    settings = {
        "pca_components": 4,
        "perplexity": 10,
        "n_clusters": 3,
        "silhouette_sample": 100,
        "chunk_rows": 64,
        "tsne_iterations": 50,
    }
    out = tmp_path / "analysis"
    result = analyse(paths, out, analysis=settings, colour_by=NAMES, seed=0, n_jobs=1)
    table = pd.read_parquet(out / "tsne.parquet")
    assert len(table) == len(x) == result["n_maps"]
    assert set(table["cluster"]) == {0, 1, 2} and sum(result["cluster_sizes"]) == len(x)
    assert result["maps_by_split"] == {"test": 90, "train": 270}
    assert set(result["stages"]) == {"pca", "tsne", "clusters", "figures"}
    assert all(s["seconds"] >= 0 and s["peak_rss_mb"] > 0 for s in result["stages"].values())
    assert json.loads((out / "analysis.json").read_text()) == result
    assert (out / "figures" / "tsne.png").stat().st_size > 0


def test_a_file_without_embeddings_is_named(tmp_path):
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as h5:
        h5.create_dataset("sim_id", data=np.arange(3))
    with pytest.raises(KeyError, match="bad.h5: missing dataset 'embeddings'"):
        reduce([bad], n_components=2, rows=10, seed=0)
