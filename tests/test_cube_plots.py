"""Cube figures: channel maps, moment maps, profiles and residual maps show the right data."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from cube_factory import tiny_config
from matplotlib.image import AxesImage

from astroflow.cubes.moments import moment_maps
from astroflow.cubes.plots import (
    plot_channel_maps,
    plot_moment_maps,
    plot_profiles,
    plot_residual_maps,
)
from astroflow.cubes.shards import read_cube_shard, write_cube_shard

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    return write_cube_shard(tiny_config(), "test", 0, 4, 0, tmp_path_factory.mktemp("s") / "s.h5")


@pytest.fixture(scope="module")
def predictions(shard, tmp_path_factory):
    """Network 0.1 dex too dense and 0.2 km/s too fast everywhere; baseline flat and exact in
    the mean."""
    data = read_cube_shard(shard)
    path = tmp_path_factory.mktemp("p") / "predictions.h5"
    flat = np.broadcast_to(data.density.mean(axis=1, keepdims=True), data.density.shape)
    with h5py.File(path, "w") as f:
        f["density"] = data.density * 10**0.1
        f["velocity"] = data.velocity + 0.2
        f["true_density"] = data.density
        f["true_velocity"] = data.velocity
        f["baseline_density"] = flat
        f["baseline_velocity"] = np.zeros_like(data.velocity)
        f["bin_centers"] = data.bin_centers
    return path, data


def images(fig):
    return [
        artist for ax in fig.axes for artist in ax.get_children() if isinstance(artist, AxesImage)
    ]


def test_channel_maps_show_the_brightest_core_in_the_bright_channels(shard, tmp_path):
    fig = plot_channel_maps(shard, tmp_path / "channels.png", n_maps=8)
    assert (tmp_path / "channels.png").read_bytes()[:8] == PNG_MAGIC
    data = read_cube_shard(shard)
    core = int(np.argmax(data.cubes.max(axis=(1, 2, 3))))
    shown = images(fig)
    assert len(shown) == 8
    assert any(
        np.allclose(image.get_array(), data.cubes[core, k]) for image in shown for k in range(24)
    )
    assert f"core {core}" in fig._suptitle.get_text()


def test_moment_maps_pair_each_moment_with_its_truth(shard, tmp_path):
    fig = plot_moment_maps(shard, tmp_path / "moments.png", n_examples=2)
    data = read_cube_shard(shard, slice(0, 2))
    m0, _, _ = moment_maps(data.cubes, data.channels)
    shown = images(fig)
    assert len(shown) == 8  # 2 cores x (moment 0, column density, moment 1, true velocity)
    np.testing.assert_allclose(shown[0].get_array(), m0[0])
    np.testing.assert_allclose(shown[1].get_array(), np.log10(data.column_density[0]))


def test_profiles_draw_truth_network_and_baseline(predictions, tmp_path):
    path, data = predictions
    fig = plot_profiles(path, tmp_path / "profiles.png", n_cores=2)
    density_axes = fig.axes[:4]
    assert len(fig.axes) == 8 and all(ax.get_yscale() == "log" for ax in density_axes)
    true_line, network_line, _ = density_axes[0].get_lines()
    np.testing.assert_allclose(network_line.get_ydata(), true_line.get_ydata() * 10**0.1, rtol=1e-5)
    np.testing.assert_allclose(true_line.get_xdata(), data.bin_centers)
    assert "network 0.100 dex, 0.200 km/s" in fig._suptitle.get_text()


def test_residual_maps_are_the_rms_over_the_line_of_sight(predictions, tmp_path):
    path, _ = predictions
    fig = plot_residual_maps(path, tmp_path / "residuals.png", n_examples=2)
    shown = images(fig)
    assert len(shown) == 10
    np.testing.assert_allclose(shown[1].get_array(), 0.1, rtol=1e-4)  # network density, dex
    np.testing.assert_allclose(shown[3].get_array(), 0.2, rtol=1e-4)  # network velocity, km/s
    assert shown[1].get_clim() == shown[2].get_clim()  # network and baseline share a scale


def test_missing_dataset_names_file_and_key(tmp_path):
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f["density"] = np.ones((1, 2, 3, 3))
    with pytest.raises(KeyError, match=r"p.h5: missing dataset 'velocity'"):
        plot_profiles(path, tmp_path / "x.png")
