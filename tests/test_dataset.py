"""ShardDataset: channel/parameter selection by name, indexing across shards, D4 augmentation,
per-process HDF5 handles, and clear errors for shards that lack what is asked for."""

import pickle
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from shard_factory import write_shard, write_splits
from torch.utils.data import DataLoader

from astroflow.maps import cmd
from astroflow.maps.dataset import (
    D4_ORDER,
    ShardDataset,
    ShardFormatError,
    dihedral,
    unscale,
    unscale_sigma,
)
from astroflow.maps.gather import MappedShards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    paths = write_splits(
        root, {"train": 3}, shards_per_split=2, maps_per_sim=4, fields=("Mgas", "HI", "B")
    )
    return paths["train"]


def d4_reference(x: np.ndarray) -> list[np.ndarray]:
    """The 8 symmetries of the square applied to the last two axes, written independently."""
    out = []
    for mirrored in (x, np.swapaxes(x, -1, -2)):
        out += [np.rot90(mirrored, k, axes=(-2, -1)) for k in range(4)]
    return out


def test_items_select_fields_and_params_by_name(shards):
    ds = ShardDataset(shards, fields=["B", "Mgas"], params=["sigma_8", "Omega_m"])
    with h5py.File(shards[1]) as h5:
        maps, params, sim_id = h5["maps"][2], h5["params"][2], int(h5["sim_id"][2])
    n_first = len(ShardDataset(shards[:1], ["Mgas"], ["Omega_m"]))
    x, y, sid = ds[n_first + 2]
    assert x.dtype == torch.float32 and x.shape == (2, 16, 16)
    # Shard field order is Mgas, HI, B: channel 0 must be B, channel 1 Mgas.
    np.testing.assert_array_equal(x[0].numpy(), maps[2])
    np.testing.assert_array_equal(x[1].numpy(), maps[0])
    assert y.dtype == torch.float32
    np.testing.assert_array_equal(y.numpy(), params[[1, 0]])
    assert sid == sim_id


def test_length_and_indexing_across_shards(shards):
    ds = ShardDataset(shards, ["Mgas"], ["Omega_m"])
    with h5py.File(shards[0]) as a, h5py.File(shards[1]) as b:
        sim_ids = np.concatenate([a["sim_id"][:], b["sim_id"][:]])
        last_map = b["maps"][-1, 0]
    assert len(ds) == len(sim_ids) == 24
    np.testing.assert_array_equal(ds.sim_ids, sim_ids)
    assert [ds[i][2] for i in range(len(ds))] == sim_ids.tolist()
    np.testing.assert_array_equal(ds[-1][0][0].numpy(), last_map)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_targets_are_scaled_params_and_params_raw_is_physical(shards):
    ds = ShardDataset(shards, ["Mgas"], ["A_SN1", "Omega_m"])
    assert ds.param_names == list(cmd.PARAM_NAMES)
    assert ds.params_raw.shape == (len(ds), 6)
    np.testing.assert_allclose(ds.targets, cmd.scale_params(ds.params_raw)[:, [2, 0]], atol=1e-6)
    assert ds.targets.min() >= 0 and ds.targets.max() <= 1
    np.testing.assert_allclose(unscale(ds.targets, ["A_SN1", "Omega_m"]), ds.params_raw[:, [2, 0]])


def test_unscale_sigma_is_the_width_of_the_range():
    sigma = np.array([[0.1, 0.5]])
    np.testing.assert_allclose(unscale_sigma(sigma, ["Omega_m", "A_AGN1"]), [[0.04, 1.875]])


def rechunked(paths, out_dir):
    """Copies of shards with ``maps`` chunked one map per chunk, as compressed shards are."""
    copies = []
    for path in paths:
        copy = out_dir / Path(path).name
        with h5py.File(path, "r") as src, h5py.File(copy, "w") as dst:
            for key in src:
                data = src[key][...]
                chunks = (1, 1, *data.shape[2:]) if key == "maps" else None
                dst.create_dataset(key, data=data, chunks=chunks)
            dst.attrs.update(src.attrs)
        copies.append(copy)
    return copies


@pytest.mark.parametrize(
    "fields", [["HI", "Mgas"], ["Mgas", "HI"], ["HI", "B"], ["B", "Mgas", "HI"], ["HI"]]
)
def test_in_memory_mapped_and_chunked_reads_agree(shards, tmp_path, fields):
    """Any channel selection: out of file order, a block of consecutive channels (from the
    first one or not), a channel followed by a block, one channel."""
    cached = ShardDataset(shards, fields, ["Omega_m"], in_memory=True)
    mapped = ShardDataset(shards, fields, ["Omega_m"], in_memory=False)
    chunked = ShardDataset(rechunked(shards, tmp_path), fields, ["Omega_m"], in_memory=False)
    # Contiguous shards stream from memory maps of their files, chunked ones through h5py.
    assert isinstance(mapped._mapping(0).base, np.memmap)
    assert isinstance(mapped._mapped_shards(), MappedShards)
    assert not mapped._files  # the mappings hold the files; no HDF5 handle stays open
    assert chunked._mapping(0) is None and chunked._mapped_shards() is None
    for i in (0, 5, 13, 23):
        np.testing.assert_array_equal(cached[i][0].numpy(), mapped[i][0].numpy())
        np.testing.assert_array_equal(cached[i][0].numpy(), chunked[i][0].numpy())
    keys = [(23, 3), (0, 0), (13, 7), (5, 1), (23, 0)]  # across shards, any order, repeats
    batch = cached[keys].x.numpy()
    assert batch.shape[1] == len(fields)
    np.testing.assert_array_equal(batch, mapped[keys].x.numpy())
    np.testing.assert_array_equal(batch, chunked[keys].x.numpy())


def test_dihedral_elements_are_the_eight_symmetries_of_the_square():
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(2, 5, 5)
    ours = [dihedral(x, g).numpy() for g in range(D4_ORDER)]
    reference = d4_reference(x.numpy())
    assert len({a.tobytes() for a in ours}) == 8
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="0..7"):
        dihedral(x, 8)


def test_augmentation_draws_exactly_the_eight_transforms(shards):
    plain = ShardDataset(shards, ["Mgas", "HI"], ["Omega_m"])
    aug = ShardDataset(shards, ["Mgas", "HI"], ["Omega_m"], augment=True)
    x0, y0, s0 = plain[3]
    expected = {a.tobytes() for a in d4_reference(x0.numpy())}
    torch.manual_seed(0)
    seen = set()
    for _ in range(200):
        x, y, s = aug[3]
        assert torch.equal(y, y0) and s == s0
        seen.add(x.numpy().tobytes())
    # All channels share one transform, so each draw is one of the 8 reference stacks.
    assert seen == expected


def test_augmentation_is_reproducible_from_the_seed(shards):
    def draws(seed):
        torch.manual_seed(seed)
        ds = ShardDataset(shards, ["Mgas"], ["Omega_m"], augment=True)
        return torch.stack([ds[i % 4][0] for i in range(40)])

    assert torch.equal(draws(1), draws(1))
    assert not torch.equal(draws(1), draws(2))


def test_loader_workers_open_their_own_files_and_reproduce(shards):
    plain = ShardDataset(shards, ["Mgas", "B"], ["Omega_m"])
    expected = torch.stack([plain[i][0] for i in range(len(plain))])
    plain[0]  # the parent now holds open handles; workers must not reuse them

    def run(augment):
        ds = ShardDataset(shards, ["Mgas", "B"], ["Omega_m"], augment=augment)
        loader = DataLoader(
            ds, batch_size=5, num_workers=2, generator=torch.Generator().manual_seed(7)
        )
        return torch.cat([x for x, _, _ in loader])

    loaded = DataLoader(plain, batch_size=5, num_workers=2)
    assert torch.equal(torch.cat([x for x, _, _ in loaded]), expected)
    first, second = run(True), run(True)
    assert torch.equal(first, second)
    assert not torch.equal(first, expected)


def test_dataset_pickles_without_handles(shards):
    ds = ShardDataset(shards, ["Mgas"], ["Omega_m"])
    x = ds[0][0]  # opens a handle in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[0][0], x)


def test_missing_field_names_file_and_field(shards):
    with pytest.raises(ShardFormatError, match=rf"{re.escape(str(shards[0]))}.*field 'Z'"):
        ShardDataset(shards, ["Mgas", "Z"], ["Omega_m"])


def test_missing_param_names_file_and_param(shards):
    with pytest.raises(ShardFormatError, match=rf"{re.escape(str(shards[0]))}.*parameter 'w_0'"):
        ShardDataset(shards, ["Mgas"], ["w_0"])


def test_missing_dataset_names_file_and_key(tmp_path):
    path = write_shard(tmp_path / "000.h5", n_sims=1)
    with h5py.File(path, "a") as h5:
        del h5["params_raw"]
    with pytest.raises(
        ShardFormatError, match=rf"{re.escape(str(path))}: dataset 'params_raw' missing"
    ):
        ShardDataset([path], ["Mgas"], ["Omega_m"])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.h5"):
        ShardDataset([tmp_path / "nowhere.h5"], ["Mgas"], ["Omega_m"])


def test_shards_with_different_normalization_are_refused(tmp_path):
    a = write_shard(tmp_path / "a.h5", n_sims=1)
    b = write_shard(tmp_path / "b.h5", n_sims=1, seed=3)
    with h5py.File(b, "a") as h5:
        h5.attrs["mean"] = h5.attrs["mean"] + 1.0
    with pytest.raises(ShardFormatError, match=rf"{re.escape(str(b))}: attributes 'mean'/'std'"):
        ShardDataset([a, b], ["Mgas"], ["Omega_m"])
