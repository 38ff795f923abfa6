"""Cube shards: deterministic bytes, the documented layout and units, clear errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from cube_factory import tiny_config

from astroflow.cubes import synthetic
from astroflow.cubes.params import PARAM_NAMES
from astroflow.cubes.shards import CubeShardError, read_cube_shard, write_cube_shard


def test_same_seed_gives_the_same_bytes_and_other_keys_other_cores(tmp_path):
    config = tiny_config()
    a = write_cube_shard(config, "train", 0, 3, 11, tmp_path / "a.h5")
    b = write_cube_shard(config.to_dict(), "train", 0, 3, 11, tmp_path / "b.h5")
    assert a.read_bytes() == b.read_bytes()
    reference = read_cube_shard(a).cubes
    for name, split, shard, seed in [
        ("c", "train", 1, 11),
        ("d", "val", 0, 11),
        ("e", "train", 0, 12),
    ]:
        other = read_cube_shard(write_cube_shard(config, split, shard, 3, seed, tmp_path / name))
        assert not np.array_equal(other.cubes, reference)


def test_layout_units_and_content(tmp_path):
    config = tiny_config()
    path = write_cube_shard(config, "test", 2, 4, 5, tmp_path / "s.h5")
    shard = read_cube_shard(path)
    n, nv, nb = config.grid_size, config.n_channels, config.n_bins
    assert shard.cubes.shape == (4, nv, n, n) and shard.cubes.dtype == np.float32
    assert shard.density.shape == shard.velocity.shape == (4, nb, n, n)
    assert shard.column_density.shape == (4, n, n)
    assert shard.params.shape == (4, len(PARAM_NAMES))
    np.testing.assert_allclose(shard.channels, config.channels_kms)
    np.testing.assert_allclose(shard.bin_centers, config.bin_centers_pc)
    assert shard.config == config
    assert (shard.attrs["split"], shard.attrs["shard"], shard.attrs["seed"]) == ("test", 2, 5)
    assert shard.attrs["kappa_K_kms_cm2"] == pytest.approx(config.kappa)
    with h5py.File(path) as h5:
        units = {key: h5[key].attrs["units"] for key in h5}
        assert list(h5["params"].attrs["names"]) == list(PARAM_NAMES)
        assert h5["cubes"].chunks == (1, nv, n, n)
    assert units == {
        "cubes": "K",
        "density": "cm-3",
        "velocity": "km/s",
        "column_density": "cm-2",
        "params": "",
        "channels": "km/s",
        "bin_centers": "pc",
    }
    # The column density is the bin-mean density times the depth: the targets agree.
    depth_cm = config.box_size_pc * 3.0856775814913673e18
    np.testing.assert_allclose(shard.density.mean(1) * depth_cm, shard.column_density, rtol=1e-5)
    subset = read_cube_shard(path, slice(1, 3))
    np.testing.assert_array_equal(subset.cubes, shard.cubes[1:3])


def test_a_failing_job_leaves_no_shard(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "los_profiles", broken)  # the writer imports it on call
    with pytest.raises(RuntimeError, match="disk full"):
        write_cube_shard(tiny_config(), "train", 0, 2, 1, tmp_path / "s.h5")
    assert list(tmp_path.iterdir()) == []


def test_read_errors_name_the_file_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        read_cube_shard(tmp_path / "missing.h5")
    path = write_cube_shard(tiny_config(), "train", 0, 1, 1, tmp_path / "s.h5")
    with h5py.File(path, "a") as h5:
        del h5["velocity"]
    with pytest.raises(CubeShardError, match="s.h5: dataset 'velocity' missing"):
        read_cube_shard(path)
    with pytest.raises(ValueError, match="n_cores_per_shard"):
        write_cube_shard(tiny_config(), "train", 0, 0, 1, tmp_path / "t.h5")
