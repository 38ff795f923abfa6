"""Report figures: valid PNGs of the announced size, the right panels and data, clear errors."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.image import AxesImage

from astroflow.maps.cmd import PARAM_NAMES, scale_params
from astroflow.plots import (
    DPI,
    field_cmap,
    plot_example_maps,
    plot_predictions,
    plot_training_curves,
    plot_tsne,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def assert_png_matches(path: Path, fig) -> None:
    width, height = fig.get_size_inches() * DPI
    assert png_size(path) == (round(width), round(height))
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]


def image_axes(fig) -> list:
    """Axes showing a map (colorbar axes hold no AxesImage)."""
    return [ax for ax in fig.axes if any(isinstance(a, AxesImage) for a in ax.get_children())]


def write_shard(path: Path, fields=("Mgas", "HI", "B"), n_sims=4, maps_per_sim=3, size=16):
    """A small shard in the documented format; map values encode (map index, field) to check
    that the plot shows the right map and channel."""
    n = n_sims * maps_per_sim
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(n, len(fields), size, size)).astype(np.float32)
    for i in range(n):
        for c in range(len(fields)):
            maps[i, c, 0, 0] = 100 * i + c
    sim_id = np.repeat(np.arange(10, 10 + n_sims), maps_per_sim).astype(np.int64)
    raw = np.tile([[0.3, 0.8, 1.0, 1.0, 1.0, 1.0]], (n, 1)).astype(np.float32)
    raw[:, 0] = 0.1 + 0.1 * (sim_id - 10)
    with h5py.File(path, "w") as f:
        f.create_dataset("maps", data=maps, chunks=(1, len(fields), size, size))
        f["params"] = scale_params(raw)
        f["params_raw"] = raw
        f["sim_id"] = sim_id
        f["map_index"] = np.arange(n, dtype=np.int64)
        f.attrs["fields"] = list(fields)
        f.attrs["param_names"] = list(PARAM_NAMES)
        f.attrs["mean"] = np.zeros(len(fields))
        f.attrs["std"] = np.ones(len(fields))
        f.attrs["log_floor"] = 1e-10
        f.attrs["split"] = "test"
        f.attrs["shard"] = 0
        f.attrs["suite"] = "IllustrisTNG"
        f.attrs["set"] = "LH"
        f.attrs["format_version"] = 1
    return path


def test_example_maps_grid_fields_and_colormaps(tmp_path):
    shard = write_shard(tmp_path / "000.h5")
    out = tmp_path / "figures" / "maps.png"
    fig = plot_example_maps(shard, out, ["B", "Mgas"], n_examples=3)

    assert_png_matches(out, fig)
    panels = image_axes(fig)
    assert len(panels) == 6  # 2 fields x 3 simulations
    # Row-major: row 0 is B (channel 2), row 1 is Mgas (channel 0); column j is the first map
    # of the j-th simulation (map indices 0, 3, 6).
    for k, ax in enumerate(panels):
        row, col = divmod(k, 3)
        image = ax.get_images()[0]
        channel = (2, 0)[row]
        assert image.get_array()[0, 0] == 100 * (3 * col) + channel
        assert image.get_cmap().name == field_cmap(("B", "Mgas")[row])
    assert field_cmap("B") != field_cmap("Mgas") != field_cmap("HI") != field_cmap("B")
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "log10 B (standardized)" in labels and "log10 Mgas (standardized)" in labels
    titles = [ax.get_title() for ax in panels[:3]]
    assert [t.splitlines()[0] for t in titles] == ["sim 10", "sim 11", "sim 12"]


def test_example_maps_default_all_fields(tmp_path):
    shard = write_shard(tmp_path / "000.h5", n_sims=2)
    fig = plot_example_maps(shard, tmp_path / "maps.png")
    assert len(image_axes(fig)) == 3 * 2  # every field, only two simulations available


def test_example_maps_missing_field_names_file(tmp_path):
    shard = write_shard(tmp_path / "000.h5", fields=("Mgas",))
    out = tmp_path / "maps.png"
    with pytest.raises(KeyError, match=r"000\.h5.*'HI'"):
        plot_example_maps(shard, out, ["Mgas", "HI"])
    assert not out.exists()


def write_train_log(path: Path, columns=None) -> Path:
    epochs = np.arange(1, 7)
    log = pd.DataFrame(
        {
            "epoch": epochs,
            "step": epochs * 50,
            "train_loss": [1.0, 0.2, -0.5, -0.9, -1.2, -1.4],
            "val_loss": [1.1, 0.3, -0.6, -0.8, -0.7, -0.75],  # best at epoch 4
            "lr": 1e-3 * 0.5 ** (epochs - 1),
            "samples_per_s": [900.0, 1000, 1010, 990, 1005, 1000],
            "elapsed_s": 12.0 * epochs,
        }
    )
    log[columns or list(log.columns)].to_csv(path, index=False)
    return path


def test_training_curves(tmp_path):
    csv = write_train_log(tmp_path / "train_log.csv")
    out = tmp_path / "curves.png"
    fig = plot_training_curves(csv, out)

    assert_png_matches(out, fig)
    ax_loss, ax_lr, ax_speed = fig.axes
    lines = {line.get_label(): line for line in ax_loss.get_lines()}
    np.testing.assert_array_equal(
        lines["validation"].get_ydata(), [1.1, 0.3, -0.6, -0.8, -0.7, -0.75]
    )
    assert "best (epoch 4)" in lines
    assert lines["best (epoch 4)"].get_xdata()[0] == 4
    assert ax_lr.get_yscale() == "log"
    assert "samples / s" in ax_speed.get_ylabel()
    assert "1.2 min" in ax_speed.get_title()  # 72 s in total


def test_training_curves_missing_column_names_file(tmp_path):
    csv = write_train_log(tmp_path / "train_log.csv", ["epoch", "step", "train_loss", "lr"])
    with pytest.raises(KeyError, match=r"train_log\.csv.*val_loss"):
        plot_training_curves(csv, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def write_predictions(path: Path, names, n=200, noise=0.02, seed=0) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.1, 1.0, (n, len(names)))
    mean = truth + rng.normal(0.0, noise, truth.shape)
    with h5py.File(path, "w") as f:
        f["mean"] = mean.astype(np.float32)
        f["std"] = np.full(truth.shape, noise, np.float32)
        f["truth"] = truth.astype(np.float32)
        f["sim_id"] = np.arange(n, dtype=np.int64) // 15
        f.attrs["param_names"] = list(names)
    return path, 1 - np.sum((mean - truth) ** 2, 0) / np.sum((truth - truth.mean(0)) ** 2, 0)


def test_predictions_panels_and_r2(tmp_path):
    h5, r2 = write_predictions(tmp_path / "predictions.h5", ["Omega_m", "sigma_8"])
    out = tmp_path / "pred.png"
    fig = plot_predictions(h5, out)

    assert_png_matches(out, fig)
    assert len(fig.axes) == 2
    for ax, expected in zip(fig.axes, r2, strict=True):
        assert len(ax.containers) == 1  # one errorbar series
        text = ax.texts[0].get_text()
        assert f"$R^2$ = {expected:.3f}" in text
        assert expected > 0.95
        assert ax.get_xlabel().startswith("true") and ax.get_ylabel().startswith("predicted")
    assert "Omega" in fig.axes[0].get_xlabel() and "sigma" in fig.axes[1].get_xlabel()


def test_predictions_grid_drops_unused_axes_and_thins_points(tmp_path):
    h5, _ = write_predictions(tmp_path / "predictions.h5", PARAM_NAMES[:4], n=500)
    fig = plot_predictions(h5, tmp_path / "pred.png", max_points=100)
    assert len(fig.axes) == 4  # 2x3 grid minus 2 empty panels
    points = fig.axes[0].containers[0].lines[0]
    assert len(points.get_xdata()) == 100


def test_predictions_missing_dataset_names_file(tmp_path):
    path = tmp_path / "predictions.h5"
    with h5py.File(path, "w") as f:
        f["mean"] = np.zeros((5, 1), np.float32)
        f["truth"] = np.zeros((5, 1), np.float32)
        f.attrs["param_names"] = ["Omega_m"]
    with pytest.raises(KeyError, match=r"predictions\.h5.*'std'"):
        plot_predictions(path, tmp_path / "pred.png")


def write_tsne_inputs(tmp_path: Path, n=90, n_labels=None):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    table = pd.DataFrame(
        {
            "tsne_x": rng.normal(size=n) + 5 * labels,
            "tsne_y": rng.normal(size=n),
            "sim_id": np.arange(n) // 15,
        }
    )
    for name in PARAM_NAMES:
        table[name] = rng.uniform(0.1, 1.0, n).astype(np.float32)
    parquet = tmp_path / "tsne.parquet"
    table.to_parquet(parquet, index=False)
    clusters = tmp_path / "clusters.json"
    labels = labels[: n_labels or n]
    clusters.write_text(json.dumps({"labels": labels.tolist(), "silhouette": 0.61}))
    return parquet, clusters, table


def test_tsne_three_coloured_panels(tmp_path):
    parquet, clusters, table = write_tsne_inputs(tmp_path)
    out = tmp_path / "tsne.png"
    fig = plot_tsne(parquet, clusters, out)

    assert_png_matches(out, fig)
    panels = [ax for ax in fig.axes if any(isinstance(c, PathCollection) for c in ax.collections)]
    assert len(panels) == 3
    colours = [ax.collections[0].get_array() for ax in panels]
    np.testing.assert_allclose(colours[0], table["Omega_m"])
    np.testing.assert_allclose(colours[1], table["sigma_8"])
    np.testing.assert_array_equal(colours[2], np.arange(90) % 3)
    assert panels[2].collections[0].get_cmap().N == 3  # one distinct colour per cluster
    assert "0.61" in panels[2].get_title()


def test_tsne_rejects_mismatched_inputs(tmp_path):
    parquet, clusters, _ = write_tsne_inputs(tmp_path, n_labels=80)
    with pytest.raises(ValueError, match=r"clusters\.json.*80.*tsne\.parquet.*90"):
        plot_tsne(parquet, clusters, tmp_path / "tsne.png")
    pd.read_parquet(parquet).drop(columns="sigma_8").to_parquet(parquet)
    with pytest.raises(KeyError, match=r"tsne\.parquet.*sigma_8"):
        plot_tsne(parquet, clusters, tmp_path / "tsne.png")
    assert not (tmp_path / "tsne.png").exists()


def test_plotting_never_touches_pyplot(tmp_path):
    """No pyplot means no global backend switch and no figures kept alive in a registry."""
    csv = write_train_log(tmp_path / "train_log.csv")
    code = (
        "import sys; from astroflow.plots import plot_training_curves; "
        f"plot_training_curves({str(csv)!r}, {str(tmp_path / 'c.png')!r}); "
        "assert 'matplotlib.pyplot' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert png_size(tmp_path / "c.png")[0] > 0
