"""The classifier family through the engine: both classes from the same shards, a model file
that carries the P(k)-and-moments baseline, predictions and metrics of both side by side,
embeddings with the class, and the config checks of its architectures."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from astroflow.config import ConfigError, validate_config
from astroflow.embed import embed
from astroflow.evaluation.classification import (
    spectral_baseline_probabilities,
    spectral_features,
)
from astroflow.families.classifier.data import PhaseClassDataset, SuiteClassDataset
from astroflow.infer import predict
from astroflow.maps.dataset import ShardDataset
from astroflow.maps.shards import compute_train_stats, write_shard
from astroflow.maps.synthetic import write_synthetic_cmd
from astroflow.modelfile import load_model
from astroflow.train import train_experiment

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SETTINGS = {
    "model": "classifier",
    "arch": "cnn2d",
    "layer_param": 4,
    "dropout": 0.0,
    "fields": ["Mgas"],
    "classes": "phase",
    "strength": 2.0,
    "params": ["Omega_m"],
    "epochs": 20,
    "batch_size": 16,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "seed": 2,
}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic_shards(
    root: Path, n_sims: int, seed: int = 3, suite: str = "IllustrisTNG", size: int = 64
) -> dict[str, list[Path]]:
    """Shards of synthetic CMD maps (Mgas) made as the workflow makes them: the tests need
    real power-law spectra, whose high-k power a counterpart reproduces."""
    raw = root / "raw"
    write_synthetic_cmd(raw, suite, "LH", ["Mgas"], n_sims, size, 25.0, seed)
    splits = {"train": 0.5, "val": 0.2, "test": 0.3}
    stats = root / "stats.json"
    compute_train_stats(raw, suite, "LH", ["Mgas"], n_sims, splits, seed, 1e-20, stats)
    return {
        split: [write_shard(raw, suite, "LH", stats, split, 0, 10_000, root / f"{split}.h5")]
        for split in splits
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifier")
    shards = synthetic_shards(root, 12)
    model = root / "model.pt"
    train_experiment(SETTINGS, shards["train"], shards["val"], model, root / "log.csv", root / "tb")
    metrics = predict(model, shards["test"], root / "predictions.h5", root / "metrics.json")
    embed(model, shards["test"], root / "embeddings.h5")
    return {"root": root, "shards": shards, "model": model, "metrics": metrics}


def test_both_classes_come_from_the_same_maps_and_splits(run):
    maps = ShardDataset(run["shards"]["test"], ["Mgas"], [])
    both = PhaseClassDataset(run["shards"]["test"], ["Mgas"], SETTINGS["strength"])
    n = len(maps)
    assert len(both) == 2 * n
    np.testing.assert_array_equal(both.targets, np.repeat([0, 1], n))
    np.testing.assert_array_equal(both.sim_ids[:n], both.sim_ids[n:])
    # A counterpart has its map's pixel values, in other places.
    original, counterpart = both.maps[0, 0], both.maps[n, 0]
    np.testing.assert_allclose(np.sort(original.ravel()), np.sort(counterpart.ravel()), atol=1e-6)
    assert not np.allclose(original, counterpart)


def test_the_model_file_carries_the_baseline_fitted_on_the_training_maps(run):
    _, meta = load_model(run["model"])
    assert meta["class_names"] == ["map", "phase-coupled"]
    baseline = meta["baseline"]
    train = PhaseClassDataset(run["shards"]["train"], ["Mgas"], SETTINGS["strength"])
    p = spectral_baseline_probabilities(baseline, spectral_features(train.maps, 1.0), 2)
    assert p.shape == (len(train), 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


def test_predictions_and_metrics_agree(run):
    with h5py.File(run["root"] / "predictions.h5") as h5:
        probabilities = h5["probabilities"][:]
        labels = h5["label"][:]
        assert h5["baseline_probabilities"].shape == probabilities.shape
        assert h5["example_maps"].shape[1:] == (1, 64, 64)
        assert list(h5.attrs["class_names"]) == ["map", "phase-coupled"]
    metrics = json.loads((run["root"] / "metrics.json").read_text())
    assert metrics == run["metrics"]
    accuracy = float(np.mean(probabilities.argmax(axis=1) == labels))
    assert metrics["network"]["accuracy"] == pytest.approx(accuracy)
    assert np.sum(metrics["network"]["confusion"]) == metrics["n_maps"] == len(labels)
    # Both classes share P(k) and the pixel values map by map: the baseline sees nothing.
    assert metrics["baseline"]["accuracy"] < 0.7
    assert metrics["network"]["accuracy"] > 0.9


def test_embeddings_carry_the_class_after_the_simulation_parameters(run):
    with h5py.File(run["root"] / "embeddings.h5") as h5:
        names = [n.decode() if isinstance(n, bytes) else n for n in h5.attrs["param_names"]]
        params = h5["params_raw"][:]
        assert names[-1] == "class" and len(names) == 7
        assert h5["embeddings"].shape == (len(params), 32)  # 8 x layer_param
    np.testing.assert_array_equal(np.unique(params[:, -1]), [0.0, 1.0])


def test_prediction_is_repeatable(run, tmp_path):
    predict(run["model"], run["shards"]["test"], tmp_path / "p.h5", tmp_path / "m.json")
    with h5py.File(tmp_path / "p.h5") as a, h5py.File(run["root"] / "predictions.h5") as b:
        np.testing.assert_array_equal(a["probabilities"][:], b["probabilities"][:])


def config_with(experiment, map_size=64):
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["data"]["map_size"] = map_size
    config["experiments"] = {"clf": experiment}
    return config


def test_an_architecture_that_cannot_take_the_map_size_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'experiments\.clf\.arch'.*multiple of 64, got 32"):
        validate_config(config_with({"model": "classifier", "arch": "penguin"}, 32), SCHEMA)
    config = config_with({"model": "classifier", "arch": "cnn2d"}, 32)
    assert validate_config(config, SCHEMA)["experiments"]["clf"]["layer_param"] == 8


def test_a_strength_sweep_becomes_one_experiment_per_value():
    experiment = {"model": "classifier", "sweep": {"strength": [0.0, 1.5, 6]}}
    config = validate_config(config_with(experiment), SCHEMA)
    assert list(config["experiments"]) == ["clf_strength_0", "clf_strength_1p5", "clf_strength_6"]
    assert [e["strength"] for e in config["experiments"].values()] == [0.0, 1.5, 6]
    assert config["sweeps"]["clf"]["experiments"] == list(config["experiments"])


def test_suite_classes_share_the_first_suites_standardization(tmp_path):
    tng = synthetic_shards(tmp_path / "tng", 4, suite="IllustrisTNG", size=32)["test"]
    simba = synthetic_shards(tmp_path / "simba", 4, seed=4, suite="SIMBA", size=32)["test"]
    both = SuiteClassDataset([*simba, *tng], ["Mgas"], ["IllustrisTNG", "SIMBA"])
    n_tng = len(ShardDataset(tng, ["Mgas"], []))
    assert both.class_names == ("IllustrisTNG", "SIMBA")
    np.testing.assert_array_equal(both.targets, np.repeat([0, 1], [n_tng, len(both) - n_tng]))
    # SIMBA maps in TNG's units: undo TNG's standardization and find SIMBA's log10 maps.
    own = ShardDataset(simba, ["Mgas"], [])
    log_maps = own[list(range(len(own)))].x.numpy() * own.field_std[0] + own.field_mean[0]
    reference = ShardDataset(tng, ["Mgas"], [])
    restored = both.maps[n_tng:] * reference.field_std[0] + reference.field_mean[0]
    np.testing.assert_allclose(restored, log_maps, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="suite 'SIMBA' is not one of the classes"):
        SuiteClassDataset([*simba, *tng], ["Mgas"], ["IllustrisTNG", "Astrid"])


def test_suite_classes_need_two_known_suites():
    experiment = {"model": "classifier", "classes": "suites", "suites": ["SIMBA"]}
    with pytest.raises(ConfigError, match=r"'experiments\.clf\.suites'.*two or more"):
        validate_config(config_with(experiment), SCHEMA)
    experiment["suites"] = ["SIMBA", "EAGLE"]
    with pytest.raises(ConfigError, match="'EAGLE'.*no synthetic model"):
        validate_config(config_with(experiment), SCHEMA)
