"""Train-split statistics and HDF5 shards from small raw files in the CMD layout."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from astroflow.maps import cmd
from astroflow.maps.shards import (
    DataFormatError,
    compute_train_stats,
    denormalize_maps,
    normalize_maps,
    write_shard,
)
from astroflow.maps.splits import maps_of_sims, shard_map_indices, split_simulations

SUITE, SET = "IllustrisTNG", "LH"
FIELDS = ("Mgas", "HI")
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
SEED = 5
FLOOR = 1e-3
N_SIMS, SIZE, PER_SHARD = 10, 16, 20


def write_raw(
    raw_dir: Path,
    n_sims: int = N_SIMS,
    size: int = SIZE,
    fields=FIELDS,
    seed: int = 0,
    holes: bool = True,
) -> dict[str, np.ndarray]:
    """Raw CMD layout: log-normal maps whose level depends on the simulation, HI with holes
    (empty pixels, floored with ``floor_non_positive``) unless ``holes`` is false."""
    rng = np.random.default_rng(seed)
    raw_dir.mkdir(parents=True, exist_ok=True)
    lo = np.array([cmd.LH_RANGES[p][0] for p in cmd.PARAM_NAMES])
    hi = np.array([cmd.LH_RANGES[p][1] for p in cmd.PARAM_NAMES])
    params = lo + (hi - lo) * rng.random((n_sims, len(cmd.PARAM_NAMES)))
    np.savetxt(raw_dir / cmd.params_filename(SUITE, SET), params)
    level = np.repeat(np.log(params[:, 0] / 0.3), cmd.MAPS_PER_SIM)[:, None, None]
    data = {}
    for k, field in enumerate(fields):
        logs = 3.0 * k + level + rng.normal(0.0, 1.0 + k, (n_sims * cmd.MAPS_PER_SIM, size, size))
        maps = np.exp(logs).astype(np.float32)
        if field == "HI" and holes:
            maps[rng.random(maps.shape) < 0.05] = 0.0  # empty pixels, to exercise the floor
        np.save(raw_dir / cmd.map_filename(field, SUITE, SET), maps)
        data[field] = maps
    data["params"] = params
    return data


def reference_log(maps: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(maps.astype(np.float64), FLOOR))


@pytest.fixture
def raw(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    raw_dir = tmp_path / "raw"
    return raw_dir, write_raw(raw_dir)


def stats_for(raw_dir: Path, out: Path, **kwargs) -> dict:
    kwargs.setdefault("floor_non_positive", True)  # the fixture's HI has empty pixels
    return compute_train_stats(
        raw_dir, SUITE, SET, FIELDS, N_SIMS, FRACTIONS, SEED, FLOOR, out, **kwargs
    )


def all_shards(raw_dir: Path, stats_json: Path, out_dir: Path) -> dict[str, list[Path]]:
    layout = shard_map_indices(N_SIMS, FRACTIONS, SEED, PER_SHARD)
    paths: dict[str, list[Path]] = {}
    for split, pieces in layout.items():
        for shard in range(len(pieces)):
            out = out_dir / split / f"{shard:03d}.h5"
            write_shard(raw_dir, SUITE, SET, stats_json, split, shard, PER_SHARD, out)
            paths.setdefault(split, []).append(out)
    return paths


def stack(paths: list[Path], key: str) -> np.ndarray:
    parts = []
    for path in paths:
        with h5py.File(path, "r") as h5:
            parts.append(h5[key][...])
    return np.concatenate(parts)


def test_stats_are_the_log_moments_of_the_train_maps(raw, tmp_path: Path) -> None:
    raw_dir, data = raw
    stats = stats_for(raw_dir, tmp_path / "stats.json")
    assert json.loads((tmp_path / "stats.json").read_text()) == stats
    train = maps_of_sims(split_simulations(N_SIMS, FRACTIONS, SEED)["train"])
    for field in FIELDS:
        logs = reference_log(data[field][train])
        assert stats["fields"][field]["mean"] == pytest.approx(logs.mean(), rel=1e-6)
        assert stats["fields"][field]["std"] == pytest.approx(logs.std(), rel=1e-6)
        floored = np.mean(data[field][train] < FLOOR)
        assert stats["fields"][field]["floored_fraction"] == pytest.approx(floored)
    assert stats["fields"]["HI"]["floored_fraction"] > 0.04
    assert stats["field_order"] == list(FIELDS)
    assert stats["splits"] == {
        name: ids.tolist() for name, ids in split_simulations(N_SIMS, FRACTIONS, SEED).items()
    }
    assert stats["n_maps"] == {"train": 90, "val": 30, "test": 30}
    assert stats["source_files"] == {
        path.name: path.stat().st_size for path in sorted(raw_dir.iterdir())
    }
    assert (stats["seed"], stats["fractions"], stats["log_floor"]) == (SEED, FRACTIONS, FLOOR)


def test_stats_do_not_depend_on_the_read_size(raw, tmp_path: Path) -> None:
    raw_dir, _ = raw
    one_map_at_a_time = stats_for(raw_dir, tmp_path / "a.json", chunk_bytes=1)
    all_at_once = stats_for(raw_dir, tmp_path / "b.json", chunk_bytes=1 << 30)
    # Equal up to float32 log10 rounding (vectorized and scalar loops may differ by one ulp);
    # a dropped or doubled chunk would shift these by percents.
    for field in FIELDS:
        for key in ("mean", "std"):
            assert one_map_at_a_time["fields"][field][key] == pytest.approx(
                all_at_once["fields"][field][key], rel=1e-7
            )


def test_stats_ignore_val_and_test_maps(raw, tmp_path: Path) -> None:
    raw_dir, data = raw
    before = stats_for(raw_dir, tmp_path / "before.json")
    path = raw_dir / cmd.map_filename("Mgas", SUITE, SET)
    val_map = int(before["splits"]["val"][0]) * cmd.MAPS_PER_SIM
    train_map = int(before["splits"]["train"][0]) * cmd.MAPS_PER_SIM
    maps = data["Mgas"].copy()
    maps[val_map] *= 1e6
    np.save(path, maps)
    assert stats_for(raw_dir, tmp_path / "after.json")["fields"] == before["fields"]
    # Train maps do move the statistics: the check above can fail. (One map scaled by 1e6
    # would dominate them and be refused; one simulation ten times denser is plausible.)
    maps[train_map : train_map + cmd.MAPS_PER_SIM] *= 10
    np.save(path, maps)
    changed = stats_for(raw_dir, tmp_path / "changed.json")["fields"]["Mgas"]
    assert changed["mean"] > before["fields"]["Mgas"]["mean"] + 0.01


def test_statistics_stream_a_large_file_memory_mapped(tmp_path: Path) -> None:
    n_sims, size = 24, 128  # 360 maps of 128x128 float32: a 23.6 MB field file
    raw_dir = tmp_path / "raw"
    write_raw(raw_dir, n_sims=n_sims, size=size, fields=("Mgas",))
    file_bytes = (raw_dir / cmd.map_filename("Mgas", SUITE, SET)).stat().st_size
    assert file_bytes > 20e6

    tracemalloc.start()
    try:
        # Sensitivity check: tracemalloc does see numpy buffers, so a whole load would show.
        np.load(raw_dir / cmd.map_filename("Mgas", SUITE, SET))
        _, peak_full_load = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        stats = compute_train_stats(
            raw_dir, SUITE, SET, ["Mgas"], n_sims, FRACTIONS, SEED, FLOOR,
            tmp_path / "stats.json", chunk_bytes=1 << 18,
        )  # fmt: skip
        _, peak_stats = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        write_shard(
            raw_dir, SUITE, SET, tmp_path / "stats.json", "train", 0, 10_000,
            tmp_path / "train.h5", chunk_bytes=1 << 18,
        )  # fmt: skip
        _, peak_shard = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_full_load >= file_bytes
    assert stats["n_maps"]["train"] * size * size * 4 > 0.5 * file_bytes
    assert peak_stats < file_bytes / 8
    assert (tmp_path / "train.h5").stat().st_size > 0.5 * file_bytes
    assert peak_shard < file_bytes / 8


def test_shards_hold_the_standardized_maps_of_their_split(raw, tmp_path: Path) -> None:
    raw_dir, data = raw
    stats = stats_for(raw_dir, tmp_path / "stats.json")
    paths = all_shards(raw_dir, tmp_path / "stats.json", tmp_path / "shards")
    layout = shard_map_indices(N_SIMS, FRACTIONS, SEED, PER_SHARD)
    mean = np.array([stats["fields"][f]["mean"] for f in FIELDS])
    std = np.array([stats["fields"][f]["std"] for f in FIELDS])
    for split, shard_paths in paths.items():
        for shard, path in enumerate(shard_paths):
            with h5py.File(path, "r") as h5:
                index = h5["map_index"][...]
                assert np.array_equal(index, layout[split][shard])
                assert np.array_equal(h5["sim_id"][...], index // cmd.MAPS_PER_SIM)
                maps = h5["maps"]
                assert maps.shape == (index.size, len(FIELDS), SIZE, SIZE)
                assert maps.dtype == np.float32
                assert maps.chunks is None  # contiguous: streamed through a file mapping
                assert maps.compression is None
                for i, field in enumerate(FIELDS):
                    expected = (reference_log(data[field][index]) - mean[i]) / std[i]
                    np.testing.assert_allclose(maps[:, i], expected, atol=1e-5)
                attrs = dict(h5.attrs)
            assert list(attrs["fields"]) == list(FIELDS)
            assert list(attrs["param_names"]) == list(cmd.PARAM_NAMES)
            np.testing.assert_array_equal(attrs["mean"], mean)
            np.testing.assert_array_equal(attrs["std"], std)
            assert attrs["mean"].dtype == np.float64
            assert (attrs["split"], attrs["shard"], attrs["log_floor"]) == (split, shard, FLOOR)
            assert (attrs["suite"], attrs["set"], attrs["format_version"]) == (SUITE, SET, 1)
            sources = {
                name: raw_dir.joinpath(name).stat().st_size for name in attrs["source_files"]
            }
            assert list(attrs["source_sizes"]) == list(sources.values())
            assert attrs["source_sizes"].dtype == np.int64
            assert len(sources) == len(FIELDS) + 1
    # Every split's maps appear once, and no simulation straddles two splits.
    sims = {split: set(stack(p, "sim_id").tolist()) for split, p in paths.items()}
    assert not (
        sims["train"] & sims["val"] or sims["train"] & sims["test"] or sims["val"] & sims["test"]
    )
    every_map = np.sort(np.concatenate([stack(p, "map_index") for p in paths.values()]))
    assert np.array_equal(every_map, np.arange(N_SIMS * cmd.MAPS_PER_SIM))


def test_train_shards_are_standardized(raw, tmp_path: Path) -> None:
    raw_dir, _ = raw
    stats_for(raw_dir, tmp_path / "stats.json")
    train = stack(all_shards(raw_dir, tmp_path / "stats.json", tmp_path / "s")["train"], "maps")
    for i in range(len(FIELDS)):
        assert abs(train[:, i].mean(dtype=np.float64)) < 1e-5
        assert train[:, i].std(dtype=np.float64) == pytest.approx(1.0, abs=1e-5)


def test_normalization_has_an_explicit_inverse() -> None:
    x = np.array([[1e-8, 0.0, -3.0], [2e-3, 7.5, 3e10]], dtype=np.float32)
    z = normalize_maps(x, 2.0, 0.5, FLOOR)
    assert z.dtype == np.float32
    assert z[0, 0] == z[0, 1] == z[0, 2] == pytest.approx((np.log10(FLOOR) - 2.0) / 0.5)
    back = denormalize_maps(z, 2.0, 0.5)
    np.testing.assert_allclose(back[1], x[1], rtol=1e-5)
    np.testing.assert_allclose(back[0], FLOOR, rtol=1e-5)


def test_params_are_scaled_and_unscale_back(raw, tmp_path: Path) -> None:
    raw_dir, data = raw
    stats_for(raw_dir, tmp_path / "stats.json")
    paths = [
        p
        for ps in all_shards(raw_dir, tmp_path / "stats.json", tmp_path / "s").values()
        for p in ps
    ]
    scaled, physical, sims = (stack(paths, key) for key in ("params", "params_raw", "sim_id"))
    assert scaled.dtype == physical.dtype == np.float32
    assert scaled.shape == physical.shape == (N_SIMS * cmd.MAPS_PER_SIM, 6)
    assert scaled.min() >= 0.0 and scaled.max() <= 1.0
    np.testing.assert_allclose(physical, data["params"][sims], rtol=1e-6)
    np.testing.assert_allclose(cmd.unscale_params(scaled), physical, rtol=1e-5)
    # Omega_m = 0.1 + 0.4 * scaled: check one value against the LH range by hand.
    assert scaled[0, 0] == pytest.approx((physical[0, 0] - 0.1) / 0.4, rel=1e-5)


def test_compressed_shards_hold_the_same_maps(raw, tmp_path: Path) -> None:
    raw_dir, _ = raw
    stats_for(raw_dir, tmp_path / "stats.json")
    plain, packed = tmp_path / "plain.h5", tmp_path / "lzf.h5"
    write_shard(raw_dir, SUITE, SET, tmp_path / "stats.json", "val", 0, PER_SHARD, plain)
    write_shard(
        raw_dir, SUITE, SET, tmp_path / "stats.json", "val", 0, PER_SHARD, packed,
        compression="lzf",
    )  # fmt: skip
    with h5py.File(plain, "r") as a, h5py.File(packed, "r") as b:
        assert b["maps"].compression == "lzf"
        np.testing.assert_array_equal(a["maps"][...], b["maps"][...])


# --- bad input: one clear error naming the file, nothing left under the output name ----------


def _corrupt(raw_dir: Path, how: str) -> str:
    """Damage the raw set in one way; return the file name the error must mention."""
    mgas = raw_dir / cmd.map_filename("Mgas", SUITE, SET)
    hi = raw_dir / cmd.map_filename("HI", SUITE, SET)
    table = raw_dir / cmd.params_filename(SUITE, SET)
    maps = np.load(hi)
    if how == "missing":
        hi.unlink()
    elif how == "n_maps":
        np.save(hi, maps[:-1])
    elif how == "dtype":
        np.save(hi, maps.astype(np.float64))
    elif how == "not_square":
        np.save(hi, maps[:, :, :-1])
    elif how == "map_size":
        np.save(hi, np.ascontiguousarray(maps[:, :-2, :-2]))
    elif how == "truncated":
        hi.write_bytes(hi.read_bytes()[:-100])
    elif how == "not_npy":
        hi.write_text("<html><body>404 Not Found</body></html>\n")
    elif how == "rows":
        np.savetxt(table, np.loadtxt(table)[:-1])
    elif how == "columns":
        np.savetxt(table, np.loadtxt(table)[:, :5])
    elif how == "params_nan":
        params = np.loadtxt(table)
        params[3, 1] = np.nan
        np.savetxt(table, params)
    elif how == "nan_map":
        maps[0, 2, 3] = np.nan  # sim 0 holds map 0; make it a train sim below
        np.save(hi, maps)
    elif how == "inf_map":
        maps[0, 0, 0] = np.inf
        np.save(hi, maps)
    elif how == "non_positive":
        np.save(mgas, -np.abs(np.load(mgas)))
        return mgas.name
    return table.name if how in ("rows", "columns", "params_nan") else hi.name


BAD_INPUTS = [
    "missing",
    "n_maps",
    "dtype",
    "not_square",
    "map_size",
    "truncated",
    "not_npy",
    "rows",
    "columns",
    "params_nan",
    "nan_map",
    "inf_map",
    "non_positive",
]


@pytest.mark.parametrize("how", BAD_INPUTS)
def test_bad_raw_input_fails_stats_naming_the_file(raw, tmp_path: Path, how: str) -> None:
    raw_dir, _ = raw
    # Seed 1 puts simulation 0 (holding the NaN/inf map 0) in the train split.
    assert 0 in split_simulations(N_SIMS, FRACTIONS, 1)["train"]
    name = _corrupt(raw_dir, how)
    out_dir = tmp_path / "out"
    error = FileNotFoundError if how == "missing" else DataFormatError
    with pytest.raises(error, match=re.escape(name)) as info:
        compute_train_stats(
            raw_dir, SUITE, SET, FIELDS, N_SIMS, FRACTIONS, 1, FLOOR, out_dir / "stats.json",
            floor_non_positive=True,
        )  # fmt: skip
    if how in ("nan_map", "inf_map"):
        assert "map index 0" in str(info.value)
    assert "pickle" not in str(info.value)
    assert not out_dir.exists() or not any(out_dir.iterdir())


@pytest.mark.parametrize("how", ["missing", "dtype", "truncated", "rows"])
def test_bad_raw_input_fails_shards_naming_the_file(raw, tmp_path: Path, how: str) -> None:
    raw_dir, _ = raw
    stats_for(raw_dir, tmp_path / "stats.json")
    name = _corrupt(raw_dir, how)
    out_dir = tmp_path / "shards"
    with pytest.raises((FileNotFoundError, DataFormatError), match=re.escape(name)):
        write_shard(
            raw_dir, SUITE, SET, tmp_path / "stats.json", "train", 0, PER_SHARD, out_dir / "0.h5"
        )
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_a_bad_map_found_mid_write_leaves_no_shard(raw, tmp_path: Path) -> None:
    raw_dir, data = raw
    stats = stats_for(raw_dir, tmp_path / "stats.json")
    # The last map of the last val shard: found after the earlier maps were already written.
    last = int(shard_map_indices(N_SIMS, FRACTIONS, SEED, PER_SHARD)["val"][-1][-1])
    maps = data["HI"].copy()
    maps[last, 5, 5] = np.nan
    np.save(raw_dir / cmd.map_filename("HI", SUITE, SET), maps)
    out_dir = tmp_path / "shards"
    n_val_shards = len(shard_map_indices(N_SIMS, FRACTIONS, SEED, PER_SHARD)["val"])
    with pytest.raises(DataFormatError, match=rf"HI_.*map index {last}\b"):
        write_shard(
            raw_dir, SUITE, SET, tmp_path / "stats.json", "val", n_val_shards - 1, PER_SHARD,
            out_dir / "last.h5", chunk_bytes=1,
        )  # fmt: skip
    assert not any(out_dir.iterdir())
    assert stats["n_maps"]["val"] == 30


def test_raw_files_changed_since_the_stats_are_refused(raw, tmp_path: Path) -> None:
    raw_dir, data = raw
    stats_for(raw_dir, tmp_path / "stats.json")
    table = raw_dir / cmd.params_filename(SUITE, SET)
    np.savetxt(table, data["params"], fmt="%.6f")  # same values, other size on disk
    with pytest.raises(DataFormatError, match=r"params_LH_IllustrisTNG\.txt.*rerun the stats"):
        write_shard(
            raw_dir, SUITE, SET, tmp_path / "stats.json", "test", 0, PER_SHARD, tmp_path / "t.h5"
        )
    assert not (tmp_path / "t.h5").exists()


def test_unknown_split_or_shard_is_named(raw, tmp_path: Path) -> None:
    raw_dir, _ = raw
    stats_for(raw_dir, tmp_path / "stats.json")
    with pytest.raises(ValueError, match="split 'holdout'"):
        write_shard(
            raw_dir, SUITE, SET, tmp_path / "stats.json", "holdout", 0, PER_SHARD, tmp_path / "x.h5"
        )
    with pytest.raises(ValueError, match="shard 2 out of range: split 'val' has 2 shard"):
        write_shard(
            raw_dir, SUITE, SET, tmp_path / "stats.json", "val", 2, PER_SHARD, tmp_path / "x.h5"
        )
    with pytest.raises(DataFormatError, match="describes IllustrisTNG/LH"):
        write_shard(
            raw_dir, "SIMBA", SET, tmp_path / "stats.json", "val", 0, PER_SHARD, tmp_path / "x.h5"
        )
    assert not (tmp_path / "x.h5").exists()


def test_stats_need_a_train_split_and_a_positive_floor(raw, tmp_path: Path) -> None:
    raw_dir, _ = raw
    with pytest.raises(ValueError, match="no 'train' split"):
        compute_train_stats(
            raw_dir, SUITE, SET, FIELDS, N_SIMS, {"a": 0.5, "b": 0.5}, 0, FLOOR, tmp_path / "s.json"
        )
    with pytest.raises(ValueError, match="log_floor"):
        compute_train_stats(
            raw_dir, SUITE, SET, FIELDS, N_SIMS, FRACTIONS, 0, 0.0, tmp_path / "s.json"
        )
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (lambda m: m.__setitem__(0, -m[0]), "map index 0 of field Mgas has 256 non-positive"),
        (lambda m: m.__setitem__(0, 0.0), "map index 0 of field Mgas is constant"),
        (lambda m: m.__setitem__((0, 3, 3), 0.0), "data.floor_non_positive: true"),
        (lambda m: m.__setitem__(0, m[0] * 1e12), "map index 0 of field Mgas holds"),
    ],
)
def test_implausible_raw_maps_are_named_before_any_statistic(tmp_path: Path, spoil, expected):
    raw_dir = tmp_path / "raw"
    data = write_raw(raw_dir, holes=False)
    assert 0 in split_simulations(N_SIMS, FRACTIONS, 1)["train"]
    mgas = data["Mgas"].copy()
    spoil(mgas)
    np.save(raw_dir / cmd.map_filename("Mgas", SUITE, SET), mgas)
    with pytest.raises(DataFormatError, match=re.escape(expected)) as info:
        compute_train_stats(
            raw_dir, SUITE, SET, FIELDS, N_SIMS, FRACTIONS, 1, FLOOR, tmp_path / "stats.json"
        )
    assert cmd.map_filename("Mgas", SUITE, SET) in str(info.value)
    assert not (tmp_path / "stats.json").exists()


def test_flooring_is_a_switch_recorded_in_stats_and_shards(raw, tmp_path: Path) -> None:
    raw_dir, data = raw
    with pytest.raises(DataFormatError, match="field HI has .* non-positive"):
        stats_for(raw_dir, tmp_path / "refused.json", floor_non_positive=False)
    stats = stats_for(raw_dir, tmp_path / "stats.json")
    assert stats["floor_non_positive"] is True and stats["fields"]["HI"]["floored_fraction"] > 0
    path = write_shard(
        raw_dir, SUITE, SET, tmp_path / "stats.json", "test", 0, PER_SHARD, tmp_path / "0.h5"
    )
    with h5py.File(path) as h5:
        assert h5.attrs["floor_non_positive"]
        assert h5.attrs["floored_pixels"] == int(
            np.count_nonzero(data["HI"][h5["map_index"][:]] <= 0)
        )


def test_maps_of_another_size_than_the_config_are_refused(raw, tmp_path: Path) -> None:
    raw_dir, _ = raw
    with pytest.raises(DataFormatError, match=r"Mgas.*16x16 pixels but data.map_size is 32"):
        stats_for(raw_dir, tmp_path / "stats.json", map_size=32)
    assert stats_for(raw_dir, tmp_path / "stats.json", map_size=SIZE)["map_size"] == SIZE


@pytest.mark.parametrize(("column", "value"), [(0, 5.0), (1, -0.8)])
def test_lh_parameters_outside_their_ranges_name_file_row_and_parameter(
    raw, tmp_path: Path, column: int, value: float
) -> None:
    raw_dir, data = raw
    table = data["params"].copy()
    table[4, column] = value
    np.savetxt(raw_dir / cmd.params_filename(SUITE, SET), table)
    name = cmd.PARAM_NAMES[column]
    with pytest.raises(DataFormatError, match=rf"row 4 .*has {name} = {value:g}, outside the LH"):
        stats_for(raw_dir, tmp_path / "stats.json")


def test_other_sets_may_leave_the_lh_ranges(tmp_path: Path) -> None:
    raw_dir = tmp_path / "raw"
    data = write_raw(raw_dir)
    table = data["params"].copy()
    table[:, 0] = 0.05  # 1P and EX sets vary parameters beyond the LH box on purpose
    for field in FIELDS:
        lh = raw_dir / cmd.map_filename(field, SUITE, SET)
        lh.rename(raw_dir / cmd.map_filename(field, SUITE, "EX"))
    np.savetxt(raw_dir / cmd.params_filename(SUITE, "EX"), table)
    stats = compute_train_stats(
        raw_dir, SUITE, "EX", FIELDS, N_SIMS, FRACTIONS, SEED, FLOOR, tmp_path / "s.json",
        floor_non_positive=True,
    )  # fmt: skip
    assert stats["set"] == "EX"
