"""Workflow configuration: schema validation with defaults and cross-key checks.

Snakemake parses the workflow once on the submit host and once inside every cluster job, so
this module imports only the standard library, jsonschema and yaml (never torch or numpy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import validators

from astroflow.cubes.params import PARAM_NAMES as CORE_PARAM_NAMES
from astroflow.maps.cmd import MAPS_PER_SIM, PARAM_NAMES

SPLITS: tuple[str, ...] = ("train", "val", "test")

MODEL_DEFAULTS: dict[str, dict[str, list[str]]] = {
    "cnn2d": {"fields": ["Mgas"], "params": ["Omega_m", "sigma_8"]},
    "cnn3d": {"params": ["central_density", "infall_speed"]},
}
"""Per-model defaults of the experiment keys whose meaning depends on the model."""


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what was expected."""


def _with_defaults(validator_class: type) -> type:
    """Extend a jsonschema validator so that `default` values are filled in while validating."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, _copy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _copy(value: Any) -> Any:
    # Defaults are shared schema objects: hand every config its own lists and dicts.
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _key_path(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    """Turn a jsonschema error into 'key: what was found, what was expected'."""
    expected = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys: {', '.join(allowed)}"
    if error.validator == "type":
        msg = f"got {error.instance!r}, expected a value of type {error.validator_value}"
    elif error.validator == "enum":
        msg = f"got {error.instance!r}, expected one of {error.validator_value}"
    else:
        msg = error.message
    return f"{msg} ({expected})" if expected else msg


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Validate ``config`` in place against the YAML/JSON schema, fill defaults, check consistency.

    Raises :class:`ConfigError` with one message naming the offending key (dotted path, e.g.
    ``experiments.cnn2d_mgas.epochs``) and what was expected, so a typo stops the run before
    any job is scheduled.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator_class = validators.validator_for(schema)
    validator = _with_defaults(validator_class)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        raise ConfigError(f"invalid config value at '{_key_path(error)}': {_describe(error)}")
    _check_consistency(config)
    return config


def _check_consistency(config: Mapping[str, Any]) -> None:
    """Cross-key rules that a JSON schema cannot express."""
    data = config["data"]
    fractions = data["splits"]
    total = sum(fractions.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ConfigError(f"invalid config value at 'data.splits': fractions sum to {total}, not 1")
    for split in SPLITS:
        if round(fractions[split] * data["n_sims"]) < 1:
            raise ConfigError(
                f"invalid config value at 'data.splits.{split}': {fractions[split]} of "
                f"{data['n_sims']} simulations leaves the split empty"
            )
    size = data["map_size"]
    if size < 16 or size & (size - 1):
        raise ConfigError(
            f"invalid config value at 'data.map_size': got {size}, expected a power of two >= 16"
        )
    if data["source"] == "download" and not data.get("base_url"):
        raise ConfigError(
            "invalid config value at 'data.base_url': required when source is 'download'"
        )
    for name, experiment in config["experiments"].items():
        _fill_model_defaults(name, experiment)
        if experiment["model"] == "cnn3d":
            _check_core_params(name, experiment)
            continue
        for field in experiment["fields"]:
            if field not in data["fields"]:
                raise ConfigError(
                    f"invalid config value at 'experiments.{name}.fields': '{field}' is not one "
                    f"of data.fields {data['fields']}"
                )
        for param in experiment["params"]:
            if param not in PARAM_NAMES:
                raise ConfigError(
                    f"invalid config value at 'experiments.{name}.params': '{param}' is not one "
                    f"of {list(PARAM_NAMES)}"
                )
    if any(e["model"] == "cnn3d" for e in config["experiments"].values()):
        _check_cubes(config["cubes"])


def _fill_model_defaults(name: str, experiment: dict[str, Any]) -> None:
    """Defaults of ``fields``/``params`` for the experiment's model; cnn3d has no fields."""
    model = experiment["model"]
    if model == "cnn3d" and "fields" in experiment:
        raise ConfigError(
            f"invalid config value at 'experiments.{name}.fields': cnn3d reads PPV cubes; "
            "'fields' applies to cnn2d only"
        )
    for key, default in MODEL_DEFAULTS[model].items():
        experiment.setdefault(key, list(default))


def _check_core_params(name: str, experiment: Mapping[str, Any]) -> None:
    for param in experiment["params"]:
        if param not in CORE_PARAM_NAMES:
            raise ConfigError(
                f"invalid config value at 'experiments.{name}.params': '{param}' is not one "
                f"of the core parameters {list(CORE_PARAM_NAMES)}"
            )


def _check_cubes(cubes: Mapping[str, Any]) -> None:
    """The core settings build a valid configuration; the FITS examples fit in a shard."""
    # Imported here: it needs numpy and astropy, which a workflow without cubes never loads.
    from astroflow.cubes.config import CoreConfig

    try:
        CoreConfig.from_mapping(cubes["core"])
    except ValueError as err:
        raise ConfigError(f"invalid config value at 'cubes.core': {err}") from None
    if cubes["fits_examples"] > cubes["cores_per_shard"]:
        raise ConfigError(
            f"invalid config value at 'cubes.fits_examples': {cubes['fits_examples']} examples "
            f"but a shard holds {cubes['cores_per_shard']} cores (cubes.cores_per_shard)"
        )


def n_maps(config: Mapping[str, Any]) -> int:
    """Total number of maps per field file in the raw CMD layout."""
    return MAPS_PER_SIM * config["data"]["n_sims"]
