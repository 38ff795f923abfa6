"""One self-contained HTML page recording what a run produced and how to reproduce it.

The page goes into the Snakemake report beside the figures: per-experiment metrics, cluster
scores, the software environment and the full config. It has no external assets (inline CSS,
no scripts, no links) so it survives being mailed or attached to a paper.

Package versions come from installed metadata, never from importing the packages: the report
step must stay light and must not import torch.
"""

from __future__ import annotations

import html
import json
import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from astroflow.families import FAMILIES
from astroflow.families.base import Family
from astroflow.io import atomic_path

PACKAGES: tuple[str, ...] = (
    "astroflow",
    "torch",
    "numpy",
    "h5py",
    "astropy",
    "scikit-learn",
    "pandas",
    "pyarrow",
    "openTSNE",
    "matplotlib",
    "snakemake",
)
"""Distributions whose versions the page records (by distribution name, as pip knows them)."""

CLUSTER_COLUMNS = (
    "n_samples",
    "n_clusters",
    "silhouette",
    "silhouette_sample_size",
    "knn_r2_omega_m",
    "inertia",
    "cluster_sizes",
)
"""Preferred column order of the cluster table; per-row ``labels`` are never shown."""

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 70em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; margin-top: 1.6em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.5em 0 1em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; }
.note { color: #555; }
"""


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed version of each distribution, or "not installed"."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment() -> dict[str, str]:
    """Python, platform and package versions, flat, in display order."""
    env = {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    env.update(package_versions())
    return env


def render_summary(
    config: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]],
    clusters: Mapping[str, Mapping[str, Any]],
    *,
    env: Mapping[str, str] | None = None,
) -> str:
    """HTML text of the summary from already loaded metrics/cluster dicts (experiment -> dict).

    Every piece of text from the inputs is HTML-escaped: experiment names and config values are
    user-controlled and must not be able to inject markup into the report.
    """
    env = environment() if env is None else env
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>astroflow run summary</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>astroflow run summary</h1>",
        f'<p class="note">Generated {_esc(generated)} (UTC).</p>',
        "<h2>Test metrics</h2>",
    ]
    if not metrics:
        parts.append('<p class="note">No experiments.</p>')
    for experiment, values in metrics.items():
        rows, extras = _split_metrics(values)
        parts.append(f"<h3>{_esc(experiment)}</h3>")
        if extras:
            items = ", ".join(f"{_esc(k)} = {_fmt(v)}" for k, v in extras.items())
            parts.append(f"<p>{items}</p>")
        family = _family(config, experiment)
        parts.append(
            _table(family.metric_rows, rows, _columns(rows.values(), family.metric_columns))
        )

    parts.append("<h2>Embedding clusters</h2>")
    if clusters:
        shown = {
            name: {k: v for k, v in scores.items() if k not in {"labels", "knn_r2_by_param"}}
            for name, scores in clusters.items()
        }
        parts.append(_table("experiment", shown, _columns(shown.values(), CLUSTER_COLUMNS)))
        parts.append(_knn_table(clusters))
    else:
        parts.append('<p class="note">No cluster results.</p>')

    parts.append("<h2>Environment</h2>")
    parts.append(_table("component", {k: {"version": v} for k, v in env.items()}, ["version"]))
    parts.append("<h2>Configuration</h2>")
    config_yaml = yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=False)
    parts.append(f"<pre>{_esc(config_yaml)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_summary(
    config: Mapping[str, Any],
    metrics: Mapping[str, str | os.PathLike[str]],
    clusters: Mapping[str, str | os.PathLike[str]],
    out_html: str | os.PathLike[str],
) -> Path:
    """Read each experiment's metrics.json and clusters.json and write the page atomically.

    ``metrics`` and ``clusters`` map experiment name -> JSON path; the page keeps their order.
    """
    page = render_summary(
        config,
        {name: _read_json(path) for name, path in metrics.items()},
        {name: _read_json(path) for name, path in clusters.items()},
    )
    with atomic_path(out_html) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(out_html)


def _read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        obj = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _family(config: Mapping[str, Any], experiment: str) -> Family:
    """The family of ``experiment`` in ``config`` (a plain table layout if it is not there)."""
    model = config.get("experiments", {}).get(experiment, {}).get("model")
    return FAMILIES.get(model, Family())


def _split_metrics(values: Mapping[str, Any]) -> tuple[dict[str, Mapping], dict[str, Any]]:
    """Per-parameter rows ({name: {metric: value}}) and run-level scalars such as ``n_maps``.

    Accepts ``{"Omega_m": {...}, "n_maps": n}`` and the nested ``{"params": {"Omega_m": {...}}}``.
    """
    rows: dict[str, Mapping] = {}
    extras: dict[str, Any] = {}
    for key, value in values.items():
        if (
            isinstance(value, Mapping)
            and value
            and all(isinstance(v, Mapping) for v in value.values())
        ):
            rows.update(value)
        elif isinstance(value, Mapping):
            rows[key] = value
        else:
            extras[key] = value
    return rows, extras


def _knn_table(clusters: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per parameter, one column per experiment: what each embedding encodes."""
    by_param: dict[str, dict[str, Any]] = {}
    for experiment, scores in clusters.items():
        for param, r2 in scores.get("knn_r2_by_param", {}).items():
            by_param.setdefault(param, {})[experiment] = r2
    if not by_param:
        return ""
    note = (
        '<p class="note">Out-of-fold R<sup>2</sup> of a KNN regression of each parameter on '
        "the embeddings, folds grouped by simulation (core): near 1, neighbouring embeddings "
        "share the parameter; at or below 0, the embedding does not order items by it.</p>"
    )
    return note + _table("knn R2 of", by_param, list(clusters))


def _columns(rows: Iterable[Mapping[str, Any]], preferred: Sequence[str]) -> list[str]:
    """Preferred columns that occur, then any other keys in first-seen order."""
    seen: list[str] = []
    for row in rows:
        seen.extend(k for k in row if k not in seen)
    return [c for c in preferred if c in seen] + [c for c in seen if c not in preferred]


def _table(first: str, rows: Mapping[str, Mapping[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in (first, *columns))
    body = [
        "<tr><td>"
        + _esc(name)
        + "</td>"
        + "".join(f"<td>{_fmt(row.get(c))}</td>" for c in columns)
        + "</tr>"
        for name, row in rows.items()
    ]
    return "<table><thead><tr>" + head + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>"


def _fmt(value: Any) -> str:
    """Escaped display text: 4 significant digits for floats, lists joined by commas."""
    if value is None:
        return "&ndash;"
    if isinstance(value, bool | int | str):
        return _esc(str(value))
    if isinstance(value, float):
        return "nan" if math.isnan(value) else _esc(f"{value:.4g}")
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return _esc(json.dumps(value, default=str))


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _plain(obj: Any) -> Any:
    """Config converted to plain YAML types (Snakemake configs may hold Paths or tuples)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)
