"""Config validation: defaults filled, every mistake named by its key before any job runs."""

from pathlib import Path

import pytest
import yaml

from astroflow.config import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def minimal() -> dict:
    return {"data": {"source": "synthetic"}, "experiments": {"exp": {}}}


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml", "camels.yaml"])
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
        (lambda c: c["data"].update(n_sim=10), "data", "n_sim"),
        (lambda c: c.update(sed=3), "<top level>", "sed"),
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
