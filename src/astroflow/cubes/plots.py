"""Report figures of the cube experiments: what the spectra look like, and how well the network
reads them back into profiles, each figure one function writing one PNG (see
:mod:`astroflow.plots` for the conventions: Agg canvas, no pyplot, the Figure is returned).

Inputs are a cube shard (:mod:`astroflow.cubes.shards`) for the data figures and a cnn3d
``predictions.h5`` (:mod:`astroflow.cubes.predict`) for the prediction figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from astroflow.cubes.baseline import CLIP_SIGMA, profile_metrics
from astroflow.cubes.moments import moment_maps
from astroflow.cubes.shards import read_cube_shard
from astroflow.plots import DPI, save_png

_PREDICTIONS = (
    "density",
    "velocity",
    "true_density",
    "true_velocity",
    "baseline_density",
    "baseline_velocity",
)


def plot_channel_maps(
    shard_h5: str | os.PathLike[str], out_png: str | os.PathLike[str], *, n_maps: int = 8
) -> Figure:
    """Channel maps of the brightest core of a shard, and its spectra.

    ``n_maps`` channels evenly spaced over the part of the band where the core's summed
    spectrum exceeds 10 % of its peak, on one colour scale (K); below, the spectrum of the
    brightest column and the mean spectrum of the map, with the shown channels marked.
    """
    shard = read_cube_shard(shard_h5)
    core = int(np.argmax(shard.cubes.max(axis=(1, 2, 3))))
    cube, channels = shard.cubes[core].astype(np.float64), shard.channels
    mean_spectrum = cube.mean(axis=(1, 2))
    bright = np.flatnonzero(mean_spectrum > 0.1 * mean_spectrum.max())
    shown = np.unique(np.linspace(bright[0], bright[-1], n_maps).round().astype(int))
    vmax = float(cube[shown].max())
    vmin = min(0.0, float(np.percentile(cube[shown], 1)))

    n_cols = 4
    n_rows = -(-len(shown) // n_cols)
    fig = Figure(figsize=(11, 2.6 * n_rows + 2.8), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(n_rows + 1, n_cols, height_ratios=[1] * n_rows + [1.1])
    for k, channel in enumerate(shown):
        ax = fig.add_subplot(grid[k // n_cols, k % n_cols])
        image = ax.imshow(cube[channel], origin="lower", cmap="inferno", vmin=vmin, vmax=vmax)
        ax.set_title(f"v = {channels[channel]:+.2f} km/s", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=fig.axes, label="brightness temperature (K)", shrink=0.8)

    ax = fig.add_subplot(grid[n_rows, :])
    y, x = np.unravel_index(np.argmax(cube.sum(axis=0)), cube.shape[1:])
    ax.step(channels, cube[:, y, x], where="mid", color="C0", label=f"brightest column ({y}, {x})")
    ax.step(channels, mean_spectrum, where="mid", color="C1", label="mean over the map")
    for channel in shown:
        ax.axvline(channels[channel], color="0.8", lw=0.8, zorder=0)
    ax.set_xlabel("radio velocity (km/s)")
    ax.set_ylabel("T (K)")
    ax.legend(fontsize=8)
    fig.suptitle(f"Channel maps of core {core} of {Path(shard_h5).name} ({shard.config.tracer})")
    save_png(fig, out_png)
    return fig


def plot_moment_maps(
    shard_h5: str | os.PathLike[str], out_png: str | os.PathLike[str], *, n_examples: int = 3
) -> Figure:
    """Moment 0 and moment 1 of the first cores of a shard beside what they estimate.

    Columns: moment 0 (K km/s) and the true H2 column density (log10 cm^-2); moment 1 (km/s,
    channels above CLIP_SIGMA noise rms only; grey where none is) and the true density-weighted
    mean line-of-sight velocity of the column, on one diverging scale per row.
    """
    shard = read_cube_shard(shard_h5, slice(0, n_examples))
    config = shard.config
    clip = CLIP_SIGMA * config.noise_rms_k if config.noise_rms_k > 0 else None
    m0, _, _ = moment_maps(shard.cubes, shard.channels)
    _, m1, _ = moment_maps(shard.cubes, shard.channels, clip=clip)
    density = shard.density.astype(np.float64)
    true_v = (density * shard.velocity).sum(axis=1) / density.sum(axis=1)

    n = len(shard.cubes)
    fig = Figure(figsize=(14, 3.0 * n + 0.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(n, 4, squeeze=False)
    diverging = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.75")
    for i in range(n):
        centre = float(np.median(true_v[i]))
        both = np.concatenate([true_v[i].ravel(), m1[i][np.isfinite(m1[i])]])
        half = max(float(np.percentile(np.abs(both - centre), 98)), 1e-3)
        panels = (
            (m0[i], "moment 0 (K km/s)", "viridis", None, None),
            (
                np.log10(shard.column_density[i]),
                "true log10 N(H2) (cm$^{-2}$)",
                "viridis",
                None,
                None,
            ),
            (m1[i], "moment 1 (km/s)", diverging, centre - half, centre + half),
            (true_v[i], "true mean LOS velocity (km/s)", diverging, centre - half, centre + half),
        )
        for ax, (values, label, cmap, lo, hi) in zip(axes[i], panels, strict=True):
            image = ax.imshow(values, origin="lower", cmap=cmap, vmin=lo, vmax=hi)
            fig.colorbar(image, ax=ax, label=label, shrink=0.85)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(f"core {i}")
    fig.suptitle(f"Moment maps and the quantities they estimate ({Path(shard_h5).name})")
    save_png(fig, out_png)
    return fig


def plot_profiles(
    predictions_h5: str | os.PathLike[str], out_png: str | os.PathLike[str], *, n_cores: int = 2
) -> Figure:
    """True, predicted and baseline profiles along a few lines of sight.

    Two columns per core for the first ``n_cores`` cores: the column of highest true column
    density and one a quarter of the map away; density (log axis) above, velocity below, against
    line-of-sight depth. The title gives the scores of the whole test set.
    """
    data = _read_predictions(predictions_h5)
    bins = data["bin_centers"]
    n_side = data["true_density"].shape[-1]
    picks = []
    for core in range(min(n_cores, len(data["true_density"]))):
        column = data["true_density"][core].sum(axis=0)
        y, x = np.unravel_index(np.argmax(column), column.shape)
        picks += [(core, y, x), (core, y, (x + n_side // 4) % n_side)]

    fig = Figure(figsize=(3.4 * len(picks), 6.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(2, len(picks), sharex=True, squeeze=False)
    styles = (
        ("true", "k", "-", "o"),
        ("network", "C0", "-", None),
        ("baseline", "C1", "--", None),
    )
    for j, (core, y, x) in enumerate(picks):
        for prefix, colour, line, marker in styles:
            key = "" if prefix == "network" else f"{prefix}_"
            for row, quantity in enumerate(("density", "velocity")):
                axes[row, j].plot(
                    bins,
                    data[f"{key}{quantity}"][core, :, y, x],
                    color=colour,
                    ls=line,
                    marker=marker,
                    ms=3,
                    label=prefix,
                )
        axes[0, j].set_yscale("log")
        axes[0, j].set_title(f"core {core}, column ({y}, {x})", fontsize=9)
        axes[1, j].set_xlabel("line-of-sight depth (pc)")
    axes[0, 0].set_ylabel("H2 density (cm$^{-3}$)")
    axes[1, 0].set_ylabel("LOS velocity (km/s)")
    axes[0, 0].legend(fontsize=8)
    network = profile_metrics(*(data[k] for k in _PREDICTIONS[:4]))
    baseline = profile_metrics(
        *(data[k] for k in _PREDICTIONS[4:]), *(data[k] for k in _PREDICTIONS[2:4])
    )
    fig.suptitle(
        f"Test set RMSE: network {network['density_rmse_dex']:.3f} dex, "
        f"{network['velocity_rmse_kms']:.3f} km/s; flat-profile baseline "
        f"{baseline['density_rmse_dex']:.3f} dex, {baseline['velocity_rmse_kms']:.3f} km/s"
    )
    save_png(fig, out_png)
    return fig


def plot_residual_maps(
    predictions_h5: str | os.PathLike[str], out_png: str | os.PathLike[str], *, n_examples: int = 3
) -> Figure:
    """Where the profiles go wrong: per-column RMS residual maps, network beside baseline.

    For each of the first cores: the true log10 density averaged along the column; the RMS
    over bins of the log10 density residual (dex) of network and baseline; the same for the
    velocity (km/s). Network and baseline share one colour scale per quantity.
    """
    data = _read_predictions(predictions_h5, n_examples)
    log_true = np.log10(data["true_density"])

    def rms(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
        return np.sqrt(np.mean((pred - true) ** 2, axis=1))

    residuals = {
        "density": (
            rms(np.log10(data["density"]), log_true),
            rms(np.log10(data["baseline_density"]), log_true),
        ),
        "velocity": (
            rms(data["velocity"], data["true_velocity"]),
            rms(data["baseline_velocity"], data["true_velocity"]),
        ),
    }
    limits = {
        k: float(np.percentile(np.concatenate([a.ravel(), b.ravel()]), 99))
        for k, (a, b) in residuals.items()
    }
    n = len(log_true)
    fig = Figure(figsize=(17, 3.0 * n + 0.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(n, 5, squeeze=False)
    for i in range(n):
        panels = (
            (log_true[i].mean(axis=0), "true mean log10 n (cm$^{-3}$)", "viridis", None),
            (
                residuals["density"][0][i],
                "network log n residual (dex)",
                "magma",
                limits["density"],
            ),
            (
                residuals["density"][1][i],
                "baseline log n residual (dex)",
                "magma",
                limits["density"],
            ),
            (residuals["velocity"][0][i], "network v residual (km/s)", "magma", limits["velocity"]),
            (
                residuals["velocity"][1][i],
                "baseline v residual (km/s)",
                "magma",
                limits["velocity"],
            ),
        )
        for ax, (values, label, cmap, top) in zip(axes[i], panels, strict=True):
            image = ax.imshow(values, origin="lower", cmap=cmap, vmin=0 if top else None, vmax=top)
            fig.colorbar(image, ax=ax, label=label, shrink=0.85)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(f"core {i}")
    fig.suptitle("RMS over the line of sight of the profile residuals, per column")
    save_png(fig, out_png)
    return fig


def _read_predictions(path: str | os.PathLike[str], n: int | None = None) -> dict[str, np.ndarray]:
    """Profile arrays (first ``n`` cores, or all) and bin centres of a predictions file."""
    path = Path(path)
    rows = slice(None) if n is None else slice(0, n)
    with h5py.File(path, "r") as f:
        for key in (*_PREDICTIONS, "bin_centers"):
            if key not in f:
                raise KeyError(f"{path}: missing dataset {key!r} (found {sorted(f.keys())})")
        data = {key: np.asarray(f[key][rows], dtype=np.float64) for key in _PREDICTIONS}
        data["bin_centers"] = f["bin_centers"][...]
    return data
