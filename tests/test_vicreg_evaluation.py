"""vicreg products on tiny shards: evaluation.json compares the three embeddings on every
parameter and the nuisance, evolution.json holds one t-SNE frame per kept encoder, and the
gallery and evolution figures are drawn."""

import json

import numpy as np
import pytest
import torch
from shard_factory import write_splits

from astroflow.cluster import cluster, tsne
from astroflow.embed import embed
from astroflow.evaluation.probes import knn_r2, linear_r2
from astroflow.families import get_family
from astroflow.families.vicreg.evaluation import vicreg_features
from astroflow.maps.dataset import ShardDataset
from astroflow.train import train_experiment

VICREG = {
    "model": "vicreg",
    "fields": ["Mgas", "HI"],
    "params": ["Omega_m", "sigma_8"],
    "pairs": "fields",
    "width": 2,
    "embedding_dim": 8,
    "expander_dim": 16,
    "invariance": 25.0,
    "variance": 25.0,
    "covariance": 1.0,
    "warmup_epochs": 1,
    "collapse_threshold": 1.0,
    "snapshot_epochs": [1, 2],
    "compare_with": "cnn2d_ref",
    "epochs": 2,
    "batch_size": 8,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "seed": 3,
}
CNN2D = {
    "model": "cnn2d",
    "fields": ["HI", "Mgas"],
    "params": ["Omega_m", "sigma_8"],
    "hidden": 2,
    "dropout": 0.0,
    "epochs": 1,
    "batch_size": 8,
    "lr": 3e-3,
    "weight_decay": 0.0,
    "seed": 3,
}
ANALYSIS = {"pca_components": 4, "perplexity": 30, "n_clusters": 2}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    root = tmp_path_factory.mktemp("vicreg_products")
    shards = write_splits(root / "shards", {"train": 6, "val": 2, "test": 3}, maps_per_sim=4)
    for name, settings in (("vicreg", VICREG), ("cnn2d_ref", CNN2D)):
        out = root / name
        train_experiment(
            settings, shards["train"], shards["val"], out / "model.pt", out / "log.csv", out / "tb"
        )
    out = root / "vicreg"
    embed(out / "model.pt", shards["test"], out / "embeddings.h5", threads=1)
    tsne(
        out / "embeddings.h5",
        out / "tsne.parquet",
        pca_components=4,
        perplexity=3,
        seed=0,
        n_jobs=1,
    )
    cluster(
        out / "embeddings.h5",
        out / "clusters.json",
        n_clusters=2,
        pca_components=4,
        silhouette_sample=100,
        knn_neighbors=2,
        seed=0,
    )
    inputs = {
        "model": [str(out / "model.pt")],
        "embeddings": [str(out / "embeddings.h5")],
        "tsne": [str(out / "tsne.parquet")],
        "supervised_model": [str(root / "cnn2d_ref" / "model.pt")],
        **{split: [str(p) for p in paths] for split, paths in shards.items()},
    }
    return out, inputs, shards


def test_the_evaluation_compares_three_embeddings_on_every_parameter(products):
    out, inputs, _ = products
    family = get_family("vicreg")
    config = {"seed": 0, "analysis": ANALYSIS}
    result = family.evaluate(
        "evaluation", inputs, out / "evaluation.json", settings=VICREG, config=config
    )
    assert json.loads((out / "evaluation.json").read_text()) == result
    assert set(result["probes"]) == {"vicreg", "supervised", "pixel_pca"}
    assert set(result["moment_network"]) == set(result["probes"])
    for kind in result["probes"]:
        assert set(result["probes"][kind]) == {"Omega_m", "sigma_8"}
        assert set(result["moment_network"][kind]["Omega_m"]) >= {"r2", "frac_within_1sigma"}
        assert set(result["nuisance_knn_r2"][kind]) == {"map_index", "projection_axis"}
    assert result["n_maps"] == {"train": 24, "val": 8, "test": 12}
    assert 0.0 <= result["trustworthiness"]["value"] <= 1.0


def test_the_evaluation_reads_the_analysis_embeddings_instead_of_recomputing(products, tmp_path):
    out, inputs, shards = products
    per_shard = {
        f"{split}_embeddings": [
            str(embed(out / "model.pt", [path], tmp_path / f"{split}{i}.h5", threads=1))
            for i, path in enumerate(paths)
        ]
        for split, paths in shards.items()
    }
    for split in shards:
        dataset = ShardDataset(inputs[split], VICREG["fields"], VICREG["params"])
        computed = vicreg_features(inputs, split, dataset, torch.device("cpu"))
        read = vicreg_features({**inputs, **per_shard}, split, dataset, torch.device("cpu"))
        assert read.shape == computed.shape == (len(dataset), VICREG["embedding_dim"])
        np.testing.assert_allclose(read, computed, rtol=1e-5, atol=1e-6)
    test = ShardDataset(inputs["test"], VICREG["fields"], VICREG["params"])
    with pytest.raises(ValueError, match="do not hold the maps of the test shards"):
        vicreg_features(
            {**inputs, "test_embeddings": per_shard["val_embeddings"]},
            "test",
            test,
            torch.device("cpu"),
        )


def test_the_evolution_has_one_frame_per_kept_encoder_and_the_figures_draw(products):
    out, inputs, shards = products
    family = get_family("vicreg")
    config = {"seed": 0, "analysis": ANALYSIS}
    result = family.evaluate(
        "evolution", inputs, out / "evolution.json", settings=VICREG, config=config
    )
    saved = json.loads((out / "evolution.json").read_text())
    kept = [e for e in (1, 2) if e <= saved["final_epoch"]]
    assert result["epochs"] == kept and len(result["xy"]) == len(kept) + 1
    assert all(np.asarray(xy).shape == (12, 2) for xy in result["xy"])
    family.plot(
        "embedding_evolution", [str(out / "evolution.json")], str(out / "evo.png"), ["Omega_m"]
    )
    gallery = [str(out / "clusters.json"), *map(str, shards["test"])]
    family.plot("cluster_gallery", gallery, str(out / "gallery.png"), [])
    assert (out / "evo.png").stat().st_size > 0 and (out / "gallery.png").stat().st_size > 0


def test_the_probes_find_an_encoded_parameter_and_not_noise():
    rng = np.random.default_rng(0)
    signal = rng.uniform(0, 1, 400)
    features = np.column_stack([np.cos(3 * signal), np.sin(3 * signal), rng.normal(0, 0.01, 400)])
    target = np.column_stack([signal, rng.uniform(0, 1, 400)])
    knn = knn_r2(features[:300], target[:300], features[300:], target[300:])
    linear = linear_r2(features[:300], target[:300], features[300:], target[300:])
    assert knn[0] > 0.95 and knn[1] < 0.1
    assert linear[0] > 0.8 and linear[1] < 0.1


def test_the_cosine_knn_predicts_what_scikit_learn_predicts(monkeypatch):
    """Blocks smaller than the test set, duplicated rows (a distance of exactly 0) and a zero
    embedding, against scikit-learn's brute-force search."""
    from sklearn.neighbors import KNeighborsRegressor

    from astroflow.evaluation import probes

    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(300, 16)), rng.normal(size=(70, 16))
    test[:5] = 2.5 * train[:5]  # same direction: cosine distance 0
    train[7] = 0.0
    targets = rng.uniform(size=(300, 3))
    reference = KNeighborsRegressor(
        n_neighbors=20, metric="cosine", weights="distance", algorithm="brute"
    ).fit(train, targets)
    monkeypatch.setattr(probes, "KNN_BLOCK_ELEMENTS", 300 * 16)  # blocks of 16 test rows
    ours = probes.cosine_knn_predict(train, targets, test, 20)
    np.testing.assert_allclose(ours, reference.predict(test), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours[:5], targets[:5], rtol=1e-12)


def test_nuisance_labels_are_the_slab_and_axis_within_a_simulation():
    from astroflow.families.vicreg.evaluation import nuisance_labels

    labels = nuisance_labels(np.array([0, 4, 5, 14, 15, 2954]))
    assert labels.tolist() == [[0, 0], [4, 0], [5, 1], [14, 2], [0, 0], [14, 2]]
