"""Config validation: defaults filled, every mistake named by its key before any job runs."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from astroflow.config import ConfigError, load_config_file, validate_config
from astroflow.cubes.config import CoreConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def minimal() -> dict:
    return {
        "data": {"source": "synthetic"},
        "experiments": {"exp": {}, "cores": {"model": "cnn3d"}},
    }


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
def test_shipped_configs_are_valid(name):
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    validate_config(config, SCHEMA)
    assert config["experiments"], name


def test_defaults_are_filled_per_experiment():
    config = minimal()
    config["experiments"]["other"] = {"lr": 0.01}
    validate_config(config, SCHEMA)
    assert config["experiments"]["exp"]["epochs"] == 20
    assert config["experiments"]["other"]["lr"] == 0.01
    assert config["experiments"]["other"]["batch_size"] == 32
    assert config["data"]["splits"] == {"train": 0.7, "val": 0.15, "test": 0.15}
    # Defaults are copied, not shared between experiments.
    config["experiments"]["exp"]["fields"].append("HI")
    assert config["experiments"]["other"]["fields"] == ["Mgas"]


@pytest.mark.parametrize(
    ("mutate", "key", "expected"),
    [
        (
            lambda c: c["experiments"]["exp"].update(epochs="ten"),
            "experiments.exp.epochs",
            "integer",
        ),
        (lambda c: c["experiments"]["exp"].update(lr=-1), "experiments.exp.lr", "minimum"),
        (lambda c: c["data"].update(source="ftp"), "data.source", "synthetic"),
        (lambda c: c["data"].update(n_sim=10), "data.n_sim", "n_sims"),
        (lambda c: c.update(sed=3), "sed", "seed"),
        (lambda c: c["data"].update(map_size=48), "data.map_size", "power of two"),
        (
            lambda c: c["data"].update(splits={"train": 0.5, "val": 0.2, "test": 0.2}),
            "data.splits",
            "sum",
        ),
        (lambda c: c["data"].update(source="download"), "data.base_url", "required"),
        (lambda c: c["experiments"]["exp"].update(fields=["T"]), "experiments.exp.fields", "'T'"),
        (lambda c: c["experiments"]["exp"].update(params=["h"]), "experiments.exp.params", "'h'"),
        (
            lambda c: c["data"].update(n_sims=4, splits={"train": 0.9, "val": 0.05, "test": 0.05}),
            "data.splits.val",
            "empty",
        ),
        (lambda c: c["experiments"]["exp"].update(model="cnn4d"), "experiments.exp.model", "cnn3d"),
        (
            lambda c: c["experiments"]["exp"].update(model="cnn3d", fields=["Mgas"]),
            "experiments.exp.fields",
            "unknown key for model family 'cnn3d'",
        ),
        (
            lambda c: c["experiments"]["exp"].update(model="cnn3d", params=["Omega_m"]),
            "experiments.exp.params",
            "core parameters",
        ),
        (
            lambda c: c.update(cubes={"core": {"grid_size": 32, "n_bins": 5}}),
            "cubes.core",
            "multiple of 'n_bins'",
        ),
        (lambda c: c.update(cubes={"core": {"noise_k": 0.1}}), "cubes.core.noise_k", "noise_rms_k"),
        (
            lambda c: c.update(cubes={"shards": {"train": 0, "val": 1, "test": 1}}),
            "cubes.shards.train",
            "minimum",
        ),
        (
            lambda c: c.update(cubes={"fits_examples": 40, "cores_per_shard": 32}),
            "cubes.fits_examples",
            "32 cores",
        ),
    ],
)
def test_mistakes_name_the_key(mutate, key, expected):
    config = minimal()
    mutate(config)
    with pytest.raises(ConfigError) as error:
        validate_config(config, SCHEMA)
    message = str(error.value)
    assert f"'{key}'" in message
    assert expected in message
    assert "\n" not in message  # one message, not a traceback-sized dump


def test_model_decides_the_defaults_of_fields_and_params():
    config = minimal()
    validate_config(config, SCHEMA)
    assert config["experiments"]["exp"]["fields"] == ["Mgas"]
    assert config["experiments"]["exp"]["params"] == ["Omega_m", "sigma_8"]
    assert "fields" not in config["experiments"]["cores"]
    assert config["experiments"]["cores"]["params"] == ["central_density", "infall_speed"]
    assert config["cubes"]["shards"] == {"train": 16, "val": 2, "test": 2}
    assert config["cubes"]["core"] == {}  # CoreConfig's own defaults apply


def test_cube_settings_map_onto_the_core_configuration():
    schema = yaml.safe_load(SCHEMA.read_text())
    core = schema["properties"]["cubes"]["properties"]["core"]["properties"]
    assert set(core) == {field.name for field in dataclasses.fields(CoreConfig)}
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    validate_config(config, SCHEMA)
    built = CoreConfig.from_mapping(config["cubes"]["core"])
    assert (built.grid_size, built.n_channels, built.flat_radius_pc) == (16, 24, (0.006, 0.02))


def tiny() -> dict:
    """config/test.yaml: the sizes the parse-time checks compare against."""
    return yaml.safe_load((ROOT / "config" / "test.yaml").read_text())


@pytest.mark.parametrize(
    ("mutate", "key", "expected"),
    [
        (
            lambda c: c["experiments"]["cnn2d_mgas"].update(gpus=2, batch_size=31),
            "experiments.cnn2d_mgas.batch_size",
            "multiple of 2",
        ),
        (
            lambda c: c["experiments"]["cnn2d_mgas"].update(dropout=1.0),
            "experiments.cnn2d_mgas.dropout",
            "maximum",
        ),
        (lambda c: c["analysis"].update(n_clusters=60), "analysis.n_clusters", "60 items"),
        (
            lambda c: (
                c["experiments"].update(cnn3d_cores={"model": "cnn3d"})
                or c["analysis"].update(n_clusters=16)
            ),
            "analysis.n_clusters",
            "experiment 'cnn3d_cores' holds 16 items",
        ),
        (lambda c: c["analysis"].update(knn_neighbors=46), "analysis.knn_neighbors", "at most 45"),
        (
            lambda c: c["experiments"]["cnn3d_cores"].update(batch_size=65),
            "experiments.cnn3d_cores.batch_size",
            "64 items",
        ),
        (
            lambda c: c["experiments"]["cnn2d_mgas"].update(batch_size=181),
            "experiments.cnn2d_mgas.batch_size",
            "180 items",
        ),
        (lambda c: c["data"].update(fields=["Mgas", "T"]), "data.fields", "['T']"),
        (lambda c: c.update(seed=-1), "seed", "minimum"),
        (
            lambda c: c["experiments"].update(CNN2D_MGAS={}),
            "experiments.CNN2D_MGAS",
            "only in case",
        ),
    ],
)
def test_late_errors_are_caught_at_parse_time(mutate, key, expected):
    config = tiny()
    mutate(config)
    with pytest.raises(ConfigError) as error:
        validate_config(config, SCHEMA)
    message = str(error.value)
    assert f"'{key}'" in message
    assert expected in message


def test_classifier_counts_two_items_per_map():
    config = tiny()
    config["analysis"]["n_clusters"] = 100  # > 60 maps, < 120 classifier items
    config["experiments"] = {"c": config["experiments"]["classify_phases"]}
    validate_config(config, SCHEMA)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 7\ndata:\n  source: synthetic\n   n_sims: [3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml, line 4"):
        load_config_file(path)


def test_repeated_key_is_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("data:\n  source: synthetic\nexperiments: {}\ndata:\n  n_sims: 3\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml, line 4: key 'data' is given twice"):
        load_config_file(path)


@pytest.mark.parametrize(
    "name", ["config.yaml", "test.yaml", "camels.yaml", "embeddings-100k.yaml"]
)
def test_shipped_configs_load_strictly(name):
    assert load_config_file(ROOT / "config" / name)["experiments"]


def test_the_command_line_check_names_file_and_line_of_a_yaml_error(tmp_path, capsys):
    from astroflow.config import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 7\ndata:\n  source: synthetic\n  fields: [Mgas, HI\nexperiments: {}\n")
    assert main([str(bad), str(ROOT / "config" / "test.yaml")]) == 1
    out, err = capsys.readouterr()
    assert f"{bad}, line 5" in err and "not valid YAML" in err
    assert "test.yaml: valid, experiments cnn2d_mgas" in out
