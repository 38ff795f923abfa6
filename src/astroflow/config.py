"""Workflow configuration: schema validation with defaults, sweeps and cross-key checks.

Snakemake parses the workflow once on the submit host and once inside every cluster job, so
this module and the family descriptors it reads (:mod:`astroflow.families`) never import torch.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from jsonschema import validators

from astroflow.families import FAMILIES
from astroflow.families.base import SettingError
from astroflow.maps.cmd import SYNTHETIC_FIELDS, SYNTHETIC_SUITES
from astroflow.maps.splits import split_simulations

SPLITS: tuple[str, ...] = ("train", "val", "test")

KNN_MAX_FOLDS = 5
"""Cross-validation folds of the KNN score of embeddings (fewer if fewer simulations)."""


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what was expected."""


_FAST_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it: ten times faster than the Python one, and every
cluster job parses the config again."""


class _StrictLoader(_FAST_SAFE_LOADER):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(
                f"{key_node.start_mark.name}, line {line}: key {key!r} is given twice (first at "
                f"line {seen[key]}); YAML keeps only the last block, so merge the two"
            )
        seen[key] = line
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file strictly: a syntax error or a repeated key is a ConfigError
    naming the file and the line (Snakemake's own reader names neither and keeps the last of
    two blocks with one key)."""
    with open(path, encoding="utf-8") as stream:
        try:
            config = yaml.load(stream, Loader=_StrictLoader)  # noqa: S506 - safe loader subclass
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
            raise ConfigError(
                f"{path}, {where}: not valid YAML ({err.problem}); check the indentation "
                "(spaces, no tabs) and the brackets and quotes there"
            ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(config).__name__}")
    return config


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
    if error.validator == "type":
        msg = f"got {error.instance!r}, expected a value of type {error.validator_value}"
    elif error.validator == "enum":
        msg = f"got {error.instance!r}, expected one of {error.validator_value}"
    else:
        msg = error.message
    return f"{msg} ({expected})" if expected else msg


def validate_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Validate ``config`` in place against the YAML/JSON schema, fill defaults, check consistency.

    Every experiment is validated against the keys all families share (the schema's
    ``definitions.experiment``) plus its family's own settings, with the family's defaults; a
    key the family does not know is an error. An experiment with ``sweep: {key: [values]}``
    becomes one experiment per value, named ``<name>_<key>_<value>``; ``config["sweeps"]``
    records them. Raises :class:`ConfigError` with one message naming the offending key
    (dotted path, e.g. ``experiments.cnn2d_mgas.epochs``) and what was expected, so a typo
    stops the run before any job is scheduled.
    """
    schema = yaml.load(Path(schema_path).read_text(), Loader=_FAST_SAFE_LOADER)  # noqa: S506
    given = set(config.get("data", {})) if isinstance(config.get("data"), dict) else set()
    _validate(config, schema, "")
    if config["data"]["source"] == "local":
        _shape_from_files(config["data"], given)
    common = schema["definitions"]["experiment"]
    experiments: dict[str, Any] = {}
    sweeps: dict[str, Any] = {}
    for name, experiment in config["experiments"].items():
        for member, settings in _expand_sweep(name, experiment, sweeps).items():
            if member in experiments or (member != name and member in config["experiments"]):
                raise ConfigError(
                    f"invalid config value at 'experiments.{name}.sweep': experiment {member!r} "
                    "exists already"
                )
            experiments[member] = _validate_experiment(member, settings, common)
    _check_names(experiments)
    config["experiments"] = experiments
    config["sweeps"] = sweeps
    _check_consistency(config)
    return config


def _shape_from_files(data: dict[str, Any], given: set[str]) -> None:
    """``data.n_sims`` and ``data.map_size`` of CMD files used in place: taken from the files
    when the config leaves them out, checked against them when it gives them."""
    # Imported here: numpy, which a workflow without local files never needs while parsing.
    from astroflow.maps.local import cmd_folder_shape, params_rows

    if not data.get("path"):
        raise ConfigError("invalid config value at 'data.path': required when source is 'local'")
    try:
        shapes = {
            field: cmd_folder_shape(data["path"], data["suite"], data["set"], field)
            for field in data["fields"]
        }
        rows = params_rows(data["path"], data["suite"], data["set"])
    except ValueError as err:
        raise ConfigError(f"invalid config value at 'data.path': {err}") from None
    (field, (n_sims, size)), *others = shapes.items()
    for other, shape in others:
        if shape != (n_sims, size):
            raise ConfigError(
                f"invalid config value at 'data.fields': {other} maps are {shape[0]} simulations "
                f"of {shape[1]} px, {field} maps {n_sims} of {size} px"
            )
    if rows != n_sims:
        raise ConfigError(
            f"invalid config value at 'data.path': the parameter table has {rows} rows, the "
            f"{field} maps {n_sims} simulations"
        )
    for key, found in (("n_sims", n_sims), ("map_size", size)):
        if key in given and data[key] != found:
            raise ConfigError(
                f"invalid config value at 'data.{key}': got {data[key]}, the files in "
                f"{data['path']} have {found}; leave it out to take it from the files"
            )
        data[key] = found


def _validate(instance: Any, schema: Mapping[str, Any], prefix: str, owner: str = "") -> None:
    """Validate with defaults; the first error becomes a ConfigError naming its key.

    ``owner`` says whose keys an unknown key is not one of (a model family, say).
    """
    validator = _with_defaults(validators.validator_for(schema))(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors)
    parts = [p for p in (prefix, _key_path(error)) if p and p != "<top level>"]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        unknown = sorted(k for k in error.instance if k not in known)
        parts.append(unknown[0])
        message = (
            f"unknown key{f' for {owner}' if owner else ''}; allowed keys: "
            f"{', '.join(sorted(known))}"
        )
    else:
        message = _describe(error)
    raise ConfigError(f"invalid config value at '{'.'.join(parts) or '<top level>'}': {message}")


def _validate_experiment(
    name: str, experiment: dict[str, Any], common: Mapping[str, Any]
) -> dict[str, Any]:
    """One experiment against the shared keys and its family's settings, defaults filled."""
    model = experiment.setdefault("model", common["properties"]["model"]["default"])
    if model not in FAMILIES:
        raise ConfigError(
            f"invalid config value at 'experiments.{name}.model': got {model!r}, expected one "
            f"of {sorted(FAMILIES)}"
        )
    family = FAMILIES[model]
    schema = {
        **common,
        "additionalProperties": False,
        "properties": {**common["properties"], **family.settings},
    }
    _validate(experiment, schema, f"experiments.{name}", f"model family {model!r}")
    return experiment


def _expand_sweep(
    name: str, experiment: dict[str, Any], sweeps: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """``{name: experiment}``, or one member per value of the experiment's ``sweep``."""
    if "sweep" not in experiment:
        return {name: experiment}
    sweep = experiment["sweep"]
    if not isinstance(sweep, dict) or len(sweep) != 1:
        raise ConfigError(
            f"invalid config value at 'experiments.{name}.sweep': expected one key and its "
            f"list of values, got {sweep!r}"
        )
    ((key, values),) = sweep.items()
    if key in ("model", "sweep") or not isinstance(values, list) or len(values) < 2:
        raise ConfigError(
            f"invalid config value at 'experiments.{name}.sweep.{key}': expected a setting "
            "other than model and a list of at least two values"
        )
    members = {}
    for value in values:
        member = f"{name}_{key}_{_token(value)}"
        members[member] = {
            **{k: copy.deepcopy(v) for k, v in experiment.items() if k != "sweep"},
            key: value,
        }
    if len(members) != len(values):
        raise ConfigError(
            f"invalid config value at 'experiments.{name}.sweep.{key}': values repeat"
        )
    sweeps[name] = {"key": key, "values": list(values), "experiments": list(members)}
    return members


def _check_names(experiments: Mapping[str, Any]) -> None:
    """Names differing only in case would share one results folder on a case-insensitive disk."""
    seen: dict[str, str] = {}
    for name in experiments:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise ConfigError(
                f"invalid config value at 'experiments.{name}': differs from experiment "
                f"{other!r} only in case, and both would write one folder on a case-insensitive "
                "disk; rename one of them"
            )


def _token(value: Any) -> str:
    """A sweep value as part of an experiment name: 0.25 -> 0p25, -1 -> m1."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    text = text.replace(".", "p").replace("-", "m").replace("+", "")
    if not re.fullmatch(r"[A-Za-z0-9_]+", text):
        raise ConfigError(f"sweep value {value!r} cannot be part of an experiment name")
    return text


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
    if data["source"] == "synthetic" and data["suite"] not in SYNTHETIC_SUITES:
        raise ConfigError(
            f"invalid config value at 'data.suite': no synthetic model of {data['suite']!r}; "
            f"known: {list(SYNTHETIC_SUITES)}"
        )
    if data["source"] == "synthetic":
        unknown = [f for f in data["fields"] if f not in SYNTHETIC_FIELDS]
        if unknown:
            raise ConfigError(
                f"invalid config value at 'data.fields': the synthetic generator cannot make "
                f"{unknown}; it makes {list(SYNTHETIC_FIELDS)} (real CMD data, data.source "
                "download or local, offer all 13 fields)"
            )
    if data["source"] == "download" and not data.get("base_url"):
        raise ConfigError(
            "invalid config value at 'data.base_url': required when source is 'download'"
        )
    for name, experiment in config["experiments"].items():
        try:
            FAMILIES[experiment["model"]].check(experiment, config)
        except SettingError as err:
            raise ConfigError(
                f"invalid config value at 'experiments.{name}.{err.key}': {err.message}"
            ) from None
        _check_sizes(name, experiment, config)
    if any(FAMILIES[e["model"]].data == "cubes" for e in config["experiments"].values()):
        _check_cubes(config["cubes"])
    if any(FAMILIES[e["model"]].data == "volumes" for e in config["experiments"].values()):
        _check_volumes(config["volumes"])


def _check_sizes(name: str, experiment: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """Batch and analysis settings fit the number of items the experiment reads, and the
    global batch splits evenly across its GPUs (one process per GPU)."""
    family = FAMILIES[experiment["model"]]
    batch, gpus = experiment["batch_size"], experiment["gpus"]
    where = f"experiments.{name}.batch_size"
    if gpus >= 2 and batch % gpus:
        raise ConfigError(
            f"invalid config value at '{where}': {batch} items per step do not split evenly "
            f"across gpus: {gpus}; choose a multiple of {gpus}"
        )
    train = family.items("train", experiment, config)
    if batch > train:
        raise ConfigError(
            f"invalid config value at '{where}': {batch} is larger than the training set "
            f"({train} items), so every epoch would be one step of {train}; choose at most {train}"
        )
    if not family.embeds:
        return
    test = family.items("test", experiment, config)
    limits = {
        "n_clusters": (test - 1, f"the test set of experiment {name!r} holds {test} items"),
        "knn_neighbors": (
            _knn_limit(family.data, test, config),
            f"a cross-validation fold of the {test} test items of experiment {name!r} trains on "
            f"{_knn_limit(family.data, test, config)}",
        ),
    }
    for key, (most, why) in limits.items():
        value = config["analysis"][key]
        if value > most:
            raise ConfigError(
                f"invalid config value at 'analysis.{key}': got {value} but {why}; choose at "
                f"most {most}"
            )


def _knn_limit(kind: str, items: int, config: Mapping[str, Any]) -> int:
    """Items in the smallest training fold of the KNN score (astroflow.cluster.knn_r2): folds
    group the items of one simulation (maps) or core (cubes), all groups of equal size."""
    if kind == "maps":
        data = config["data"]
        groups = len(split_simulations(data["n_sims"], data["splits"], config["seed"])["test"])
    else:
        groups = items
    folds = min(KNN_MAX_FOLDS, groups)
    return (groups - math.ceil(groups / folds)) * (items // groups)


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


def _check_volumes(volumes: Mapping[str, Any]) -> None:
    """The volume settings build a valid synthetic configuration."""
    from astroflow.volumes.settings import VolumeConfig, synthesis_settings

    try:
        VolumeConfig(**synthesis_settings(volumes))
    except ValueError as err:
        raise ConfigError(f"invalid config value at 'volumes': {err}") from None


SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
"""The workflow's schema, beside the library in a source checkout."""


def main(argv: list[str] | None = None) -> int:
    """``python -m astroflow.config FILE...``: check config files as the workflow will.

    Snakemake reads a ``--configfile`` itself before the workflow starts and names neither the
    file nor the line of a YAML error; this check does, and runs every later check too, so a
    config can be tried before a cluster submission.
    """
    import sys

    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: python -m astroflow.config config.yaml [more.yaml ...]", file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        try:
            config = validate_config(load_config_file(path), SCHEMA)
        except (ConfigError, OSError) as err:
            print(f"{path}: {err}", file=sys.stderr)
            status = 1
            continue
        print(f"{path}: valid, experiments {', '.join(config['experiments'])}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
