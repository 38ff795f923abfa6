"""Inference: regression metrics on hand-made cases, and predictions.h5 / metrics.json from a
trained model, in physical units, with clear errors for inputs that do not fit the model."""

import json
import re
import shutil

import h5py
import numpy as np
import pytest
import torch
from shard_factory import write_shard, write_splits

from astroflow.evaluation.regression import regression_metrics
from astroflow.infer import predict
from astroflow.maps import cmd
from astroflow.maps.dataset import ShardFormatError
from astroflow.modelfile import ModelFileError, load_model
from astroflow.train import train_experiment

PARAMS = ["sigma_8", "A_SN1"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer")
    shards = write_splits(root / "shards", {"train": 6, "val": 3, "test": 4}, shards_per_split=2)
    settings = {
        "model": "cnn2d",
        "fields": ["HI", "Mgas"],
        "params": PARAMS,
        "epochs": 1,
        "batch_size": 8,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "hidden": 4,
        "dropout": 0.3,
        "seed": 0,
    }
    model = root / "model.pt"
    train_experiment(settings, shards["train"], shards["val"], model, root / "log.csv", root / "tb")
    metrics = predict(model, shards["test"], root / "predictions.h5", root / "metrics.json", 5)
    return {"root": root, "shards": shards, "model": model, "metrics": metrics}


def test_predictions_file_in_physical_units(run):
    with h5py.File(run["root"] / "predictions.h5") as h5:
        assert list(h5.attrs["param_names"]) == PARAMS
        assert list(h5.attrs["fields"]) == ["HI", "Mgas"]
        mean, std, truth = h5["mean"][:], h5["std"][:], h5["truth"][:]
        sim_id = h5["sim_id"][:]
    raw, ids = [], []
    for path in run["shards"]["test"]:
        with h5py.File(path) as shard:
            raw.append(shard["params_raw"][:])
            ids.append(shard["sim_id"][:])
    raw = np.concatenate(raw)
    assert mean.shape == std.shape == truth.shape == (len(raw), 2)
    assert mean.dtype == np.float32
    np.testing.assert_array_equal(truth, raw[:, [1, 2]])
    np.testing.assert_array_equal(sim_id, np.concatenate(ids))
    assert (std > 0).all()

    # The same numbers from the network by hand: scaled outputs mapped through the LH ranges.
    model, _ = load_model(run["model"])
    x = []
    for path in run["shards"]["test"]:
        with h5py.File(path) as shard:
            x.append(shard["maps"][:][:, [1, 0]])  # shard fields Mgas, HI -> model HI, Mgas
    with torch.no_grad():
        mu, sigma = (t.numpy() for t in model(torch.from_numpy(np.concatenate(x))))
    lo = np.array([cmd.LH_RANGES[p][0] for p in PARAMS])
    width = np.array([cmd.LH_RANGES[p][1] - cmd.LH_RANGES[p][0] for p in PARAMS])
    np.testing.assert_allclose(mean, lo + width * mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, width * sigma, rtol=1e-5, atol=1e-7)


def test_metrics_json_is_the_metrics_of_the_predictions(run):
    on_disk = json.loads((run["root"] / "metrics.json").read_text())
    assert on_disk == run["metrics"]
    with h5py.File(run["root"] / "predictions.h5") as h5:
        expected = regression_metrics(h5["mean"][:], h5["std"][:], h5["truth"][:], PARAMS)
    assert on_disk["n_maps"] == 2 * 4 * 4  # two shards of four simulations of four maps
    for name in PARAMS:
        assert on_disk["params"][name] == pytest.approx(expected[name], rel=1e-12)
    assert set(on_disk["params"]["sigma_8"]) == {
        "rmse",
        "r2",
        "mean_relative_error",
        "mean_sigma",
        "frac_within_1sigma",
    }


def test_prediction_is_repeatable(run, tmp_path):
    predict(run["model"], run["shards"]["test"], tmp_path / "p.h5", tmp_path / "m.json")
    with h5py.File(tmp_path / "p.h5") as a, h5py.File(run["root"] / "predictions.h5") as b:
        np.testing.assert_array_equal(a["mean"][:], b["mean"][:])
        np.testing.assert_array_equal(a["std"][:], b["std"][:])


def test_shards_without_the_model_field_name_file_and_field(run, tmp_path):
    shard = write_shard(tmp_path / "000.h5", n_sims=1, fields=("Mgas", "B"))
    with pytest.raises(ShardFormatError, match=rf"{re.escape(str(shard))}.*field 'HI'"):
        predict(run["model"], [shard], tmp_path / "p.h5", tmp_path / "m.json")
    assert not (tmp_path / "p.h5").exists() and not (tmp_path / "m.json").exists()


def test_shards_of_another_map_size_are_refused(run, tmp_path):
    shard = write_shard(tmp_path / "000.h5", n_sims=1, map_size=32)
    with pytest.raises(
        ValueError, match=r"maps of 32 pixels.*trained on 16 \(key 'arch.map_size'\)"
    ):
        predict(run["model"], [shard], tmp_path / "p.h5", tmp_path / "m.json")


def test_bad_model_file_is_named(run, tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match=re.escape(str(bad))):
        predict(bad, run["shards"]["test"], tmp_path / "p.h5", tmp_path / "m.json")


def test_maps_outside_the_training_ranges_are_flagged(run, tmp_path):
    """A 1P or EX simulation with a parameter beyond the LH range is predicted, and flagged."""
    shard = tmp_path / "ex.h5"
    shutil.copy(run["shards"]["test"][0], shard)
    with h5py.File(shard, "r+") as h5:
        params = h5["params_raw"][:]
        first = h5["sim_id"][:] == h5["sim_id"][0]
        params[first, cmd.PARAM_NAMES.index("A_AGN1")] = 100.0  # EX-like extreme feedback
        h5["params_raw"][...] = params
    metrics = predict(run["model"], [shard], tmp_path / "p.h5", tmp_path / "m.json")
    assert metrics["n_outside_training_ranges"] == int(first.sum()) > 0
    with h5py.File(tmp_path / "p.h5") as h5:
        np.testing.assert_array_equal(h5["outside_training_ranges"][:], first)
    assert run["metrics"]["n_outside_training_ranges"] == 0
