"""Figures for the report: one function per figure, each writing one PNG atomically.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas rather than pyplot, so
importing this module never changes matplotlib's global backend or state, and no figure lingers
in a global registry inside long-running workflow processes. Every function returns the Figure so
tests (and notebooks) can inspect its panels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, ListedColormap, LogNorm
from matplotlib.figure import Figure

from astroflow.evaluation.regression import r2_score
from astroflow.io import atomic_path, string_attr

DPI = 120

FIELD_CMAPS: dict[str, str] = {
    "Mgas": "viridis",
    "HI": "magma",
    "B": "cividis",
    "T": "inferno",
    "Z": "YlGnBu_r",
    "Mcdm": "bone",
    "Mtot": "gist_earth",
    "Mstar": "copper",
}
"""Fixed colormap per field so a field looks the same in every figure."""

_FALLBACK_CMAPS = ("plasma", "cubehelix", "twilight_shifted", "pink")

PARAM_LABELS: dict[str, str] = {
    "Omega_m": r"$\Omega_{\rm m}$",
    "sigma_8": r"$\sigma_8$",
    "A_SN1": r"$A_{\rm SN1}$",
    "A_AGN1": r"$A_{\rm AGN1}$",
    "A_SN2": r"$A_{\rm SN2}$",
    "A_AGN2": r"$A_{\rm AGN2}$",
}
"""Mathtext labels; all six CMD parameters are dimensionless, hence no units."""

CORE_PARAM_LABELS: dict[str, str] = {
    "central_density": r"$n_{\rm c}$ (cm$^{-3}$)",
    "flat_radius": r"$R_{\rm flat}$ (pc)",
    "eta": r"$\eta$",
    "log_density_sigma": r"$\sigma_{\ln n}$",
    "systemic_velocity": r"$v_{\rm sys}$ (km/s)",
    "infall_speed": r"$v_{\rm in}$ (km/s)",
    "rotation_rate": r"$\Omega$ (km/s/pc)",
}
"""Labels with units of the synthetic cores' generating parameters (t-SNE colours)."""

LOG_COLOURED = frozenset({"central_density", "flat_radius"})
"""Parameters drawn uniformly in log (:data:`astroflow.cubes.config.LOG_SAMPLED`), coloured so."""

TRAIN_LOG_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "lr", "samples_per_s", "elapsed_s")


def field_cmap(field: str) -> str:
    """Colormap name for ``field``; unknown fields get a stable fallback distinct from the known."""
    if field in FIELD_CMAPS:
        return FIELD_CMAPS[field]
    return _FALLBACK_CMAPS[sum(map(ord, field)) % len(_FALLBACK_CMAPS)]


def param_label(name: str) -> str:
    return PARAM_LABELS.get(name) or CORE_PARAM_LABELS.get(name, name)


def plot_example_maps(
    shard_h5: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    fields: Sequence[str] | None = None,
    *,
    n_examples: int = 3,
) -> Figure:
    """Grid of example maps from one shard: one row per field, one column per simulation.

    Shard maps are (n, F, N, N) standardized log10 values, shown as such (the colorbar says
    "log10 Mgas (standardized)"). Columns take the first map of the first ``n_examples``
    distinct simulations so the examples differ in parameters; each row shares one colour scale
    (1st-99th percentile of the row) so maps of a field compare directly.
    ``fields=None`` plots every field in the shard.
    """
    shard_h5 = Path(shard_h5)
    with h5py.File(shard_h5, "r") as f:
        for key in ("maps", "sim_id", "params_raw"):
            if key not in f:
                raise KeyError(f"{shard_h5}: missing dataset {key!r} (found {sorted(f.keys())})")
        available = string_attr(f, "fields")
        names = string_attr(f, "param_names")
        fields = list(available if fields is None else fields)
        missing = [name for name in fields if name not in available]
        if not fields:
            raise ValueError(f"{shard_h5}: no fields requested")
        if missing:
            raise KeyError(f"{shard_h5}: fields {missing} not in shard fields {available}")
        sim_id = f["sim_id"][...]
        _, first_rows = np.unique(sim_id, return_index=True)
        rows = np.sort(first_rows)[:n_examples]
        if len(rows) == 0:
            raise ValueError(f"{shard_h5}: shard holds no maps")
        channels = [available.index(name) for name in fields]
        # Read only the selected maps (the dataset is chunked one map per chunk).
        maps = np.stack([f["maps"][int(r)][channels] for r in rows])  # (examples, F, N, N)
        params = f["params_raw"][rows]  # rows ascending, as h5py requires

    n_cols = len(rows)
    fig = Figure(
        figsize=(2.6 * n_cols + 1.2, 2.5 * len(fields) + 0.4), dpi=DPI, layout="constrained"
    )
    axes = fig.subplots(len(fields), n_cols, squeeze=False)
    for i, field in enumerate(fields):
        vmin, vmax = np.percentile(maps[:, i], [1, 99])
        for j, row in enumerate(rows):
            ax = axes[i, j]
            image = ax.imshow(
                maps[j, i], cmap=field_cmap(field), vmin=vmin, vmax=vmax, origin="lower"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                title = f"sim {sim_id[row]}"
                for k, name in enumerate(names):
                    if name in ("Omega_m", "sigma_8"):
                        title += f"\n{param_label(name)} = {params[j, k]:.3f}"
                ax.set_title(title, fontsize=9)
            if j == 0:
                ax.set_ylabel(field)
        fig.colorbar(image, ax=axes[i, :].tolist(), label=f"log10 {field} (standardized)")
    fig.suptitle(f"Example maps from {shard_h5.name}")
    save_png(fig, out_png)
    return fig


def plot_training_curves(
    train_log_csv: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    *,
    loss_label: str = "moment loss",
) -> Figure:
    """Three panels against epoch: train/val loss (best val epoch marked), learning rate, speed.

    The moment loss is a sum of logarithms and can be negative, so its axis stays linear.
    ``loss_label`` names the model's loss (cnn3d: "profile loss").
    """
    log = _read_train_log(train_log_csv)
    # One row per epoch is the normal log; finer logging (several rows per epoch) uses steps.
    x = "epoch" if log["epoch"].is_unique else "step"
    x_label = "epoch" if x == "epoch" else "optimizer step"
    fig = Figure(figsize=(12, 3.8), dpi=DPI, layout="constrained")
    ax_loss, ax_lr, ax_speed = fig.subplots(1, 3)

    ax_loss.plot(log[x], log["train_loss"], marker="o", ms=3, label="train")
    val = log.dropna(subset=["val_loss"])
    if len(val):
        ax_loss.plot(val[x], val["val_loss"], marker="s", ms=3, label="validation")
        best = val.loc[val["val_loss"].idxmin()]
        ax_loss.axvline(best[x], color="0.5", ls=":", label=f"best (epoch {best['epoch']:g})")
    ax_loss.set_xlabel(x_label)
    ax_loss.set_ylabel(f"{loss_label} (dimensionless)")
    ax_loss.set_title("Loss")
    ax_loss.legend()

    ax_lr.plot(log[x], log["lr"], color="C2")
    if (log["lr"] > 0).all():
        ax_lr.set_yscale("log")
    ax_lr.set_xlabel(x_label)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_title("Learning rate")

    ax_speed.plot(log[x], log["samples_per_s"], color="C3")
    ax_speed.set_xlabel(x_label)
    ax_speed.set_ylabel("throughput (samples / s)")
    ax_speed.set_ylim(bottom=0)
    total_min = float(log["elapsed_s"].max()) / 60.0
    ax_speed.set_title(f"Throughput (total {total_min:.1f} min)")

    fig.suptitle(f"Training log: {Path(train_log_csv).parent.name or Path(train_log_csv).name}")
    save_png(fig, out_png)
    return fig


def plot_sweep(
    table: Mapping[str, Any],
    out_png: str | os.PathLike[str],
    *,
    reference: tuple[str, float] | None = None,
) -> Figure:
    """Each metric of a sweep table (:func:`astroflow.sweep.sweep_table`) against the swept
    value (sorted when numeric), one curve per metric, with an optional horizontal
    ``reference`` (label, value)."""
    values = list(table["values"])
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    order = np.argsort(values, kind="stable") if numeric else np.arange(len(values))
    x = np.asarray(values, dtype=float)[order] if numeric else order
    fig = Figure(figsize=(5.5, 3.8), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for label, column in table["metrics"].items():
        if len(column) != len(values):
            raise ValueError(f"metric {label!r} has {len(column)} values for {len(values)} runs")
        y = np.array([np.nan if v is None else v for v in column], dtype=float)[order]
        ax.plot(x, y, marker="o", label=label)
    if reference is not None:
        ax.axhline(reference[1], color="0.5", ls=":", label=reference[0])
    if not numeric:
        ax.set_xticks(x, [str(v) for v in values])
    ax.set_xlabel(table["key"])
    ax.set_ylabel("test metric")
    ax.legend()
    fig.suptitle(f"Sweep over {table['key']}")
    save_png(fig, out_png)
    return fig


def plot_predictions(
    predictions_h5: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    *,
    max_points: int = 1000,
) -> Figure:
    """One panel per predicted parameter: predicted mean +- predicted std against the truth.

    R^2 and RMSE in each panel use every map; only the drawing is thinned to ``max_points``
    (a fixed, evenly spaced subset) so error bars stay readable for large test sets.
    """
    predictions_h5 = Path(predictions_h5)
    with h5py.File(predictions_h5, "r") as f:
        for key in ("mean", "std", "truth"):
            if key not in f:
                raise KeyError(
                    f"{predictions_h5}: missing dataset {key!r} (found {sorted(f.keys())})"
                )
        mean, std, truth = (
            np.asarray(f[k][...], dtype=np.float64) for k in ("mean", "std", "truth")
        )
        names = string_attr(f, "param_names")
    if not (mean.shape == std.shape == truth.shape and mean.ndim == 2):
        raise ValueError(
            f"{predictions_h5}: mean/std/truth shapes differ or are not (n, P): "
            f"{mean.shape}, {std.shape}, {truth.shape}"
        )
    if mean.shape[1] != len(names):
        raise ValueError(
            f"{predictions_h5}: {mean.shape[1]} predicted columns but param_names {names}"
        )

    n, n_params = mean.shape
    shown = np.unique(np.linspace(0, n - 1, min(n, max_points)).astype(np.int64))
    n_cols = min(3, n_params)
    n_rows = -(-n_params // n_cols)
    fig = Figure(figsize=(4.0 * n_cols, 3.9 * n_rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for j, name in enumerate(names):
        ax = axes[j]
        ax.errorbar(
            truth[shown, j],
            mean[shown, j],
            yerr=std[shown, j],
            fmt="o",
            ms=2,
            lw=0.5,
            alpha=0.5,
            color="C0",
        )
        lo = min(truth[:, j].min(), mean[:, j].min())
        hi = max(truth[:, j].max(), mean[:, j].max())
        ax.plot([lo, hi], [lo, hi], color="k", lw=1, ls="--")
        r2 = r2_score(truth[:, j], mean[:, j])
        rmse = float(np.sqrt(np.mean((mean[:, j] - truth[:, j]) ** 2)))
        ax.text(
            0.04,
            0.96,
            f"$R^2$ = {'undefined' if r2 is None else f'{r2:.3f}'}\nRMSE = {rmse:.3g}",
            transform=ax.transAxes,
            va="top",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
        ax.set_xlabel(f"true {param_label(name)}")
        ax.set_ylabel(f"predicted {param_label(name)}")
    for ax in axes[n_params:]:
        ax.remove()
    fig.suptitle(f"Predictions on {n} maps (error bars: predicted 1$\\sigma$)")
    save_png(fig, out_png)
    return fig


def plot_tsne(
    tsne_parquet: str | os.PathLike[str],
    clusters_json: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    colour_by: Sequence[str] = ("Omega_m", "sigma_8"),
) -> Figure:
    """Views of the same t-SNE map coloured by each parameter of ``colour_by`` and by cluster.

    Rows of the parquet table and ``labels`` in the clusters JSON are both in embedding order,
    which is checked: a mismatch means the two files come from different runs. Parameters
    sampled in log (:data:`LOG_COLOURED`) are coloured in log.
    """
    table = pd.read_parquet(tsne_parquet)
    wanted = ("tsne_x", "tsne_y", *colour_by)
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise KeyError(f"{tsne_parquet}: missing columns {missing} (found {list(table.columns)})")
    clusters = json.loads(Path(clusters_json).read_text())
    if "labels" not in clusters:
        raise KeyError(f"{clusters_json}: missing key 'labels'")
    labels = np.asarray(clusters["labels"], dtype=np.int64)
    if len(labels) != len(table):
        raise ValueError(
            f"{clusters_json} has {len(labels)} labels but {tsne_parquet} has {len(table)} rows"
        )

    x, y = table["tsne_x"].to_numpy(), table["tsne_y"].to_numpy()
    point_size = float(np.clip(3000.0 / len(table), 1.0, 20.0))
    n_panels = len(colour_by) + 1
    fig = Figure(figsize=(5 * n_panels, 4.8), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, n_panels, sharex=True, sharey=True, squeeze=False)[0]
    cmaps = ("viridis", "plasma", "cividis", "magma")
    for k, (ax, name) in enumerate(zip(axes[:-1], colour_by, strict=True)):
        values = table[name].to_numpy()
        norm = LogNorm() if name in LOG_COLOURED else None
        points = ax.scatter(x, y, c=values, s=point_size, cmap=cmaps[k % 4], norm=norm, lw=0)
        fig.colorbar(points, ax=ax, label=param_label(name))
        ax.set_title(f"coloured by {param_label(name)}")
    n_clusters = int(labels.max()) + 1
    points = axes[-1].scatter(
        x,
        y,
        c=labels,
        s=point_size,
        cmap=_cluster_cmap(n_clusters),
        vmin=-0.5,
        vmax=n_clusters - 0.5,
        lw=0,
    )
    bar = fig.colorbar(points, ax=axes[-1], label="KMeans cluster")
    bar.set_ticks(range(n_clusters))
    title = "coloured by cluster"
    if "silhouette" in clusters:
        title += f" (silhouette {clusters['silhouette']:.2f})"
    axes[-1].set_title(title)
    for ax in axes:
        ax.set_xlabel("t-SNE 1 (arbitrary units)")
    axes[0].set_ylabel("t-SNE 2 (arbitrary units)")
    save_png(fig, out_png)
    return fig


def _cluster_cmap(n_clusters: int) -> Colormap:
    """One distinct colour per cluster: qualitative tables while they last, then a sampled map."""
    for name in ("tab10", "tab20"):
        table = matplotlib.colormaps[name]
        if n_clusters <= table.N:
            return ListedColormap(table.colors[:n_clusters], name=f"{name}_{n_clusters}")
    return matplotlib.colormaps["turbo"].resampled(n_clusters)


def _read_train_log(path: str | os.PathLike[str]) -> pd.DataFrame:
    log = pd.read_csv(path)
    missing = [c for c in TRAIN_LOG_COLUMNS if c not in log.columns]
    if missing:
        raise KeyError(f"{path}: missing columns {missing} (found {list(log.columns)})")
    if log.empty:
        raise ValueError(f"{path}: training log has no rows")
    return log


def save_png(fig: Figure, out_png: str | os.PathLike[str]) -> None:
    """Render ``fig`` to ``out_png`` atomically at :data:`DPI`."""
    FigureCanvasAgg(fig)
    # The temporary name has no .png suffix, so the format is given explicitly.
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
