"""Moment maps, the flat-profile baseline, the profile metrics and the network scaling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cube_factory import clean_config, tiny_config

from astroflow.cubes.baseline import flat_profile_baseline, profile_metrics
from astroflow.cubes.config import PC_CM
from astroflow.cubes.moments import moment_maps
from astroflow.cubes.scaling import (
    CubeScaling,
    fit_scaling,
    scale_cubes,
    scale_profiles,
    unscale_cubes,
    unscale_profiles,
)
from astroflow.cubes.shards import read_cube_shard, write_cube_shard
from astroflow.cubes.synthetic import CoreSynthesizer, column_density


def test_moments_of_a_sampled_gaussian():
    channels = np.arange(-30, 31) * 0.1
    line = 2.0 * np.exp(-0.5 * ((channels - 0.4) / 0.35) ** 2)
    cube = np.stack([line, np.zeros_like(line)], axis=-1)[:, None, :]  # (nv, 1, 2)
    m0, m1, m2 = moment_maps(cube, channels)
    assert m0[0, 0] == pytest.approx(2.0 * 0.35 * math.sqrt(2 * math.pi), rel=1e-6)
    assert m1[0, 0] == pytest.approx(0.4, abs=1e-9)
    assert m2[0, 0] == pytest.approx(0.35**2, rel=1e-6)
    assert m0[0, 1] == 0 and np.isnan(m1[0, 1]) and np.isnan(m2[0, 1])
    clipped = moment_maps(cube, channels, clip=1.0)
    assert clipped[2][0, 0] < m2[0, 0]  # the wings below the clip no longer count


def test_baseline_spreads_the_column_evenly_and_uses_the_centroid_velocity():
    config = clean_config()
    core = CoreSynthesizer(config).synthesize(np.random.default_rng(0))
    density, velocity = flat_profile_baseline(core.cube, config)
    assert density.shape == velocity.shape == (config.n_bins, 16, 16)
    depth_cm = config.box_size_pc * PC_CM
    column = column_density(core.density, config.voxel_cm)
    np.testing.assert_allclose(density[3] * depth_cm, column, rtol=1e-3)
    np.testing.assert_array_equal(density[0], density[-1])
    rho = core.density.astype(np.float64)
    centroid = (rho * core.velocity).sum(0) / rho.sum(0)
    np.testing.assert_allclose(velocity[5], centroid, atol=1e-3)


def test_baseline_on_noise_is_finite_and_positive():
    config = tiny_config(noise_rms_k=0.1)
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 0.1, (2, config.n_channels, 16, 16))
    density, velocity = flat_profile_baseline(noise, config)
    assert density.shape == (2, config.n_bins, 16, 16)
    assert np.all(density > 0) and np.all(np.isfinite(velocity))
    # A cube without a line: the columns without a channel above the clip take the band's
    # centre, not the centroid of the summed noise (which can lie anywhere, even off the band).
    channels = config.channels_kms
    quiet = np.abs(noise).max(axis=1) < 3 * 0.1
    assert quiet.any()
    np.testing.assert_allclose(velocity[:, 0][quiet], channels.mean(), atol=1e-6)
    assert np.all(np.abs(velocity) <= channels.max())


def test_metrics_of_perfect_and_flat_predictions():
    rng = np.random.default_rng(2)
    density = 10 ** rng.uniform(3, 5, (4, 8, 5, 5))
    velocity = rng.normal(0, 0.5, (4, 8, 5, 5))
    perfect = profile_metrics(density, velocity, density, velocity)
    assert perfect["density_rmse_dex"] == 0 and perfect["density_r2"] == 1
    assert perfect["velocity_rmse_kms"] == 0 and perfect["velocity_r2"] == 1
    offset = profile_metrics(density * 10, velocity + 0.3, density, velocity)
    assert offset["density_rmse_dex"] == pytest.approx(1.0)
    assert offset["velocity_rmse_kms"] == pytest.approx(0.3)
    assert offset["velocity_mae_kms"] == pytest.approx(0.3)
    mean = profile_metrics(
        np.full_like(density, 10 ** np.log10(density).mean()),
        np.full_like(velocity, velocity.mean()),
        density,
        velocity,
    )
    assert mean["density_r2"] == pytest.approx(0, abs=1e-12)
    assert mean["velocity_r2"] == pytest.approx(0, abs=1e-12)


def test_scaling_fits_training_shards_and_inverts_exactly(tmp_path):
    config = tiny_config()
    paths = [write_cube_shard(config, "train", i, 2, 3, tmp_path / f"{i}.h5") for i in range(2)]
    scaling = fit_scaling(paths)
    shards = [read_cube_shard(p) for p in paths]
    cubes = np.concatenate([s.cubes for s in shards])
    density = np.concatenate([s.density for s in shards])
    velocity = np.concatenate([s.velocity for s in shards])
    assert scaling.intensity_k == pytest.approx(np.sqrt(np.mean(cubes.astype(np.float64) ** 2)))
    y = scale_profiles(density, velocity, scaling)
    assert y.shape == (4, 2 * config.n_bins, 16, 16) and y.dtype == np.float32
    assert y[:, : config.n_bins].mean() == pytest.approx(0, abs=1e-4)
    assert y[:, config.n_bins :].std() == pytest.approx(1, rel=1e-3)
    back_density, back_velocity = unscale_profiles(y, scaling)
    np.testing.assert_allclose(back_density, density, rtol=1e-5)
    np.testing.assert_allclose(back_velocity, velocity, atol=1e-5)
    np.testing.assert_allclose(
        unscale_cubes(scale_cubes(cubes, scaling), scaling), cubes, rtol=1e-6
    )
    assert CubeScaling.from_mapping(scaling.to_dict()) == scaling
    with pytest.raises(ValueError, match="at least one"):
        fit_scaling([])
