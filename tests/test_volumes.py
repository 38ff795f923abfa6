"""Paired synthetic volumes, their shards, periodic crops and the 48 cube symmetries."""

import numpy as np
import pytest
import torch

from astroflow.evaluation.spectra3d import correlation_coefficient, power_spectrum_3d
from astroflow.models.srgan3d import upsample
from astroflow.volumes.dataset import VolumeDataset, periodic_crop, read_shards
from astroflow.volumes.scaling import fit_scaling
from astroflow.volumes.settings import VolumeConfig
from astroflow.volumes.shards import (
    VolumeShardError,
    pack_npy_pairs,
    read_volume_shard,
    write_volume_shard,
)
from astroflow.volumes.symmetry import N_SYMMETRIES, apply_symmetry
from astroflow.volumes.synthetic import VECTOR_CHANNELS, synthesize_pair

CONFIG = VolumeConfig(grid_size=32, factor=2, box_size=64.0)


@pytest.fixture(scope="module")
def pair():
    return synthesize_pair(CONFIG, seed=3)


def divergence(velocity: np.ndarray) -> np.ndarray:
    """Central-difference divergence of (vx, vy, vz) on axes (z, y, x), periodic."""
    vx, vy, vz = velocity
    return sum(
        (np.roll(v, -1, axis) - np.roll(v, 1, axis)) / 2 for v, axis in ((vx, 2), (vy, 1), (vz, 0))
    )


def test_pairs_have_the_configured_grids_statistics_and_spectrum(pair):
    low, high = pair
    assert low.shape == (4, 16, 16, 16) and high.shape == (4, 32, 32, 32)
    assert high.dtype == low.dtype == np.float32
    log_density = np.log(high[0])
    assert abs(log_density.std() - CONFIG.log_density_sigma) < 0.15
    assert abs(high[0].mean() - 1) < 0.15
    assert np.all(np.abs(high[1:].std(axis=(1, 2, 3)) / CONFIG.velocity_rms_kms - 1) < 0.4)
    # ln(density) + sigma^2 / 2 is the Gaussian field: its slope is the configured index.
    k, power = power_spectrum_3d(log_density, CONFIG.box_size)
    mid = slice(2, 12)
    slope = np.polyfit(np.log(k[mid]), np.log(power[mid]), 1)[0]
    assert slope == pytest.approx(CONFIG.spectral_index, abs=0.25)


def test_velocity_flows_converge_on_over_densities(pair):
    _, high = pair
    g = np.log(high[0])
    r = np.corrcoef(divergence(high[1:]).ravel(), g.ravel())[0, 1]
    assert r < -0.9


def test_the_coarse_grid_holds_the_large_modes_and_lacks_the_small(pair):
    low, high = pair
    up = upsample(torch.from_numpy(periodic_crop(low, (0, 0, 0), 16, 1))[None], 2, 1)[0].numpy()
    k, r = correlation_coefficient(up[1], high[1], CONFIG.box_size)
    k_nyquist = np.pi * 16 / CONFIG.box_size
    assert np.all(r[k < k_nyquist / 2] > 0.98)  # same realization, same phases
    _, p_low = power_spectrum_3d(low[1], CONFIG.box_size)
    _, p_high = power_spectrum_3d(high[1], CONFIG.box_size)
    assert np.allclose(p_low[:4], p_high[:4], rtol=0.05)  # linear channel: identical modes
    assert np.log(low[0]).std() < np.log(high[0]).std()  # fewer modes, less variance


def test_shards_are_deterministic_and_carry_units_and_parameters(tmp_path):
    settings = {"grid_size": 16, "factor": 4, "box_size": 32.0}
    a = write_volume_shard(settings, "train", 1, 2, 7, tmp_path / "a.h5")
    b = write_volume_shard(settings, "train", 1, 2, 7, tmp_path / "b.h5")
    c = write_volume_shard(settings, "train", 2, 2, 7, tmp_path / "c.h5")
    sa, sb, sc = (read_volume_shard(p) for p in (a, b, c))
    assert np.array_equal(sa.hr, sb.hr) and not np.array_equal(sa.hr, sc.hr)
    assert sa.lr.shape == (2, 4, 4, 4, 4) and sa.factor == 4
    assert sa.units == ("mean density", "km/s", "km/s", "km/s")
    assert sa.vector_channels == VECTOR_CHANNELS
    assert sa.generator["grid_size"] == 16 and sa.generator["seed"] == 7
    assert len(set(sa.seeds.tolist())) == 2


def test_npy_pairs_become_a_shard_and_bad_pairs_name_their_files(tmp_path, pair):
    low, high = pair
    np.save(tmp_path / "lr.npy", low)
    np.save(tmp_path / "hr.npy", high)
    out = pack_npy_pairs(
        [(tmp_path / "lr.npy", tmp_path / "hr.npy")],
        tmp_path / "own.h5",
        channels=["density", "vx", "vy", "vz"],
        units=["1", "km/s", "km/s", "km/s"],
        vector_channels=VECTOR_CHANNELS,
        box_size=64.0,
    )
    shard = read_volume_shard(out)
    assert np.array_equal(shard.hr[0], high) and shard.seeds.tolist() == [-1]
    np.save(tmp_path / "bad.npy", high[:, :30, :30, :30])
    with pytest.raises(VolumeShardError, match="bad.npy"):
        pack_npy_pairs(
            [(tmp_path / "lr.npy", tmp_path / "bad.npy")],
            tmp_path / "bad.h5",
            channels=["density", "vx", "vy", "vz"],
            units=["1", "km/s", "km/s", "km/s"],
            box_size=64.0,
        )
    assert not (tmp_path / "bad.h5").exists()


def test_a_shard_without_a_key_names_file_and_key(tmp_path):
    import h5py

    with h5py.File(tmp_path / "broken.h5", "w") as f:
        f["lr"] = np.ones((1, 1, 4, 4, 4), np.float32)
    with pytest.raises(VolumeShardError, match=r"broken.h5: dataset 'hr' missing"):
        read_volume_shard(tmp_path / "broken.h5")


def test_the_48_symmetries_are_distinct_and_the_divergence_is_a_scalar(pair):
    _, high = pair
    crop = periodic_crop(high, (5, 30, 2), 12, 0)  # wraps around two faces
    field = torch.from_numpy(crop).double()
    seen = set()
    for element in range(N_SYMMETRIES):
        moved = apply_symmetry(field, element, VECTOR_CHANNELS).numpy()
        seen.add(moved.tobytes())
        # Divergence of the augmented crop = the augmented divergence (a scalar field).
        div_crop = torch.from_numpy(divergence(crop[1:].astype(np.float64))[None])
        expected = apply_symmetry(div_crop, element).numpy()[0]
        actual = divergence(moved[1:])
        inner = (slice(1, -1),) * 3  # periodic differences wrap wrongly on a crop's faces
        np.testing.assert_allclose(actual[inner], expected[inner], atol=1e-9)
    assert len(seen) == N_SYMMETRIES


def test_periodic_crops_wrap_around_the_box(pair):
    low, _ = pair
    crop = periodic_crop(low, (15, 0, 14), 4, 2)
    rolled = np.roll(low, (-13, 2, -12), axis=(1, 2, 3))[:, :8, :8, :8]
    assert np.array_equal(crop, rolled)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("volumes")
    path = write_volume_shard(CONFIG.to_dict(), "train", 0, 2, 1, root / "000.h5")
    shards = read_shards([path])
    scaling = fit_scaling(shards[0].hr, shards[0].channels)
    return VolumeDataset(shards, scaling, crop=8, pad=3, crops_per_volume=3)


def test_crops_pair_the_padded_input_with_its_target_under_every_symmetry(dataset):
    assert len(dataset) == 6 and dataset.n_transforms == 48 * 16**3
    origin = 16**3 - 1  # the last voxel: the crop wraps on every axis
    base_x, base_y = dataset.item(4, origin)
    assert base_x.shape == (4, 14, 14, 14) and base_y.shape == (4, 16, 16, 16)
    up = upsample(base_x[None], 2, 3)[0]
    assert np.corrcoef(up[1].ravel(), base_y[1].ravel())[0, 1] > 0.9  # vx: large scales
    for symmetry in range(N_SYMMETRIES):
        x, y = dataset.item(4, symmetry * 16**3 + origin)
        assert torch.equal(y, apply_symmetry(base_y, symmetry, VECTOR_CHANNELS))
        # Cell-centred grids: upsampling commutes with every symmetry, so input and target
        # stay aligned (a one-voxel shift under flips would break this).
        moved_up = apply_symmetry(up, symmetry, VECTOR_CHANNELS)
        torch.testing.assert_close(upsample(x[None], 2, 3)[0], moved_up, rtol=0, atol=1e-5)


def test_a_batch_stacks_crops_and_names_their_volumes(dataset):
    batch = dataset[[(0, 5), (3, 48 * 16**3 - 1), (5, 0)]]
    assert batch.x.shape == (3, 4, 14, 14, 14) and batch.sim_id.tolist() == [0, 1, 1]
    with pytest.raises(IndexError):
        dataset[[6]]


def test_scaling_inverts_exactly(pair):
    _, high = pair
    scaling = fit_scaling(high[None], ["density", "vx", "vy", "vz"])
    scaled = scaling.forward(high)
    assert abs(scaled.mean()) < 1e-5 and np.allclose(scaled.std(axis=(1, 2, 3)), 1, atol=1e-4)
    np.testing.assert_allclose(scaling.inverse(scaled), high, rtol=1e-5, atol=1e-3)
