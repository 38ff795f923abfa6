"""Embeddings: the model's penultimate features of every map, in eval mode and shard order,
with the physical parameters and simulation ids needed downstream."""

import re

import h5py
import numpy as np
import pytest
import torch
from shard_factory import write_shard, write_splits

from astroflow.embed import embed
from astroflow.maps import cmd
from astroflow.maps.dataset import ShardFormatError
from astroflow.modelfile import load_model
from astroflow.train import train_experiment

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    shards = write_splits(root / "shards", {"train": 4, "val": 2, "test": 3}, shards_per_split=2)
    settings = {
        "model": "cnn2d",
        "fields": ["Mgas"],
        "params": ["Omega_m"],
        "epochs": 1,
        "batch_size": 8,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "hidden": 4,
        "dropout": 0.5,  # large, so features computed in training mode would differ visibly
        "seed": 0,
    }
    model = root / "model.pt"
    train_experiment(settings, shards["train"], shards["val"], model, root / "log.csv", root / "tb")
    out = embed(model, shards["test"], root / "embeddings.h5", batch_size=5)
    return {"shards": shards, "model": model, "out": out}


def shard_arrays(paths, key):
    arrays = []
    for path in paths:
        with h5py.File(path) as h5:
            arrays.append(h5[key][:])
    return np.concatenate(arrays)


def test_embeddings_are_the_eval_mode_features_in_shard_order(run):
    with h5py.File(run["out"]) as h5:
        emb = h5["embeddings"][:]
    maps = shard_arrays(run["shards"]["test"], "maps")[:, :1]  # Mgas is channel 0
    model, _ = load_model(run["model"])
    with torch.no_grad():
        expected = model.features(torch.from_numpy(maps)).numpy()
    assert emb.dtype == np.float32
    assert emb.shape == (2 * 3 * 4, 8 * 4)  # two shards x 3 sims x 4 maps, 8 * hidden features
    np.testing.assert_allclose(emb, expected, rtol=1e-5, atol=1e-6)


def test_embeddings_carry_parameters_and_simulation_ids(run):
    with h5py.File(run["out"]) as h5:
        assert list(h5.attrs["param_names"]) == list(cmd.PARAM_NAMES)
        assert list(h5.attrs["fields"]) == ["Mgas"]
        params_raw, sim_id = h5["params_raw"][:], h5["sim_id"][:]
        map_index = h5["map_index"][:]
    np.testing.assert_array_equal(params_raw, shard_arrays(run["shards"]["test"], "params_raw"))
    np.testing.assert_array_equal(sim_id, shard_arrays(run["shards"]["test"], "sim_id"))
    np.testing.assert_array_equal(map_index, shard_arrays(run["shards"]["test"], "map_index"))
    assert params_raw.shape == (24, 6)


def test_embedding_is_deterministic(run, tmp_path):
    # Dropout 0.5 would change every feature between two runs were it active.
    again = embed(run["model"], run["shards"]["test"], tmp_path / "e.h5", batch_size=5)
    with h5py.File(again) as a, h5py.File(run["out"]) as b:
        np.testing.assert_array_equal(a["embeddings"][:], b["embeddings"][:])


def test_shards_without_the_model_field_name_file_and_field(run, tmp_path):
    shard = write_shard(tmp_path / "000.h5", n_sims=1, fields=("HI",))
    with pytest.raises(ShardFormatError, match=rf"{re.escape(str(shard))}.*field 'Mgas'"):
        embed(run["model"], [shard], tmp_path / "e.h5")
    assert not (tmp_path / "e.h5").exists()


def test_missing_model_file_is_named(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        embed(tmp_path / "nothing.pt", run["shards"]["test"], tmp_path / "e.h5")


def test_one_shard_is_embedded_alone_and_labelled_with_its_split(run, tmp_path):
    shard = run["shards"]["val"][1]
    out = embed(run["model"], [shard], tmp_path / "val_001.h5", split="val")
    with h5py.File(out) as h5, h5py.File(shard) as source:
        assert h5.attrs["split"] == "val"
        np.testing.assert_array_equal(h5["sim_id"][:], source["sim_id"][:])
    assert [p.name for p in tmp_path.iterdir()] == ["val_001.h5"]  # no temporary file left
