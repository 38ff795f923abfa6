"""A sweep: one experiment per value of one setting, its metrics side by side.

``config["sweeps"]`` (see :func:`astroflow.config.validate_config`) says which experiments a
sweep made and which value each has; the family says which metrics to compare
(:attr:`~astroflow.families.base.Family.sweep_metrics`, dotted paths into ``metrics.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from astroflow.families import get_family
from astroflow.io import write_json


def sweep_table(
    sweep: Mapping[str, Any],
    metrics: Mapping[str, str],
    metric_paths: Sequence[str | os.PathLike[str]],
) -> dict[str, Any]:
    """``{"key", "values", "experiments", "metrics": {label: [value per experiment]}}``."""
    if len(metric_paths) != len(sweep["experiments"]):
        raise ValueError(
            f"{len(metric_paths)} metrics files for the {len(sweep['experiments'])} experiments "
            "of the sweep"
        )
    columns: dict[str, list[Any]] = {label: [] for label in metrics}
    for path in metric_paths:
        values = json.loads(Path(path).read_text())
        for label, dotted in metrics.items():
            columns[label].append(_lookup(values, dotted, path))
    return {
        "key": sweep["key"],
        "values": list(sweep["values"]),
        "experiments": list(sweep["experiments"]),
        "metrics": columns,
    }


def write_sweep(
    sweep: Mapping[str, Any],
    family_name: str,
    metric_paths: Sequence[str | os.PathLike[str]],
    out_json: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
) -> dict[str, Any]:
    """Write the sweep's table as JSON and its figure (each metric against the value)."""
    from astroflow.plots import plot_sweep

    family = get_family(family_name)
    table = sweep_table(sweep, family.sweep_metrics, metric_paths)
    write_json(out_json, table)
    plot_sweep(table, out_png, reference=family.sweep_reference)
    return table


def _lookup(values: Mapping[str, Any], dotted: str, path: str | os.PathLike[str]) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"{path}: key '{dotted}' missing")
        node = node[part]
    return node
