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

from astroflow.data.cmd import MAPS_PER_SIM, PARAM_NAMES

SPLITS: tuple[str, ...] = ("train", "val", "test")


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


def n_maps(config: Mapping[str, Any]) -> int:
    """Total number of maps per field file in the raw CMD layout."""
    return MAPS_PER_SIM * config["data"]["n_sims"]
