"""The gan2d emulator validation on real synthetic shards: the noise floor of fresh maps is
small, the two-point baseline gets P(k) right, a barely trained GAN is far from both, and a
cnn2d model scores real and generated maps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astroflow.engine.loop import fit
from astroflow.engine.options import RunOptions
from astroflow.families import get_family
from astroflow.families.cnn2d.training import Cnn2dTraining
from astroflow.families.gan2d.training import Gan2dTraining
from astroflow.maps.shards import compute_train_stats, write_shard
from astroflow.maps.synthetic import write_synthetic_cmd

FIELDS = ["Mgas", "HI", "B"]
SIZE, BOX, SIMS, SEED = 32, 25.0, 20, 11
SPLITS = {"train": 0.6, "val": 0.2, "test": 0.2}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _defaults(model: str) -> dict:
    return {k: v["default"] for k, v in get_family(model).settings.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan2d_emulator")
    raw = root / "raw"
    write_synthetic_cmd(raw, "IllustrisTNG", "LH", FIELDS, SIMS, SIZE, BOX, SEED)
    stats = root / "stats.json"
    compute_train_stats(raw, "IllustrisTNG", "LH", FIELDS, SIMS, SPLITS, SEED, 1e-20, stats)
    shards = {}
    for split in SPLITS:
        path = root / "shards" / split / "000.h5"
        path.parent.mkdir(parents=True)
        write_shard(raw, "IllustrisTNG", "LH", stats, split, 0, 500, path)
        shards[split] = [str(path)]
    common = {"epochs": 1, "batch_size": 16, "weight_decay": 0.0, "seed": SEED}
    gan = {
        **_defaults("gan2d"),
        **common,
        "model": "gan2d",
        "lr": 0.001,
        "latent": 4,
        "width": 4,
        "critic_width": 4,
        "embed": 8,
        "val_sims": 2,
    }
    cnn = {
        **_defaults("cnn2d"),
        **common,
        "model": "cnn2d",
        "lr": 0.002,
        "hidden": 4,
        "fields": FIELDS,
        "params": ["Omega_m", "sigma_8"],
    }
    options = RunOptions(num_workers=0)
    for name, family, settings in (("gan", Gan2dTraining(), gan), ("cnn", Cnn2dTraining(), cnn)):
        out = root / name
        fit(
            family,
            settings,
            shards["train"],
            shards["val"],
            out / "model.pt",
            out / "log.csv",
            out / "tb",
            options,
        )
    return root, shards, gan


def _evaluate(root, shards, settings, source: str, recovery: bool) -> dict:
    inputs = {"model": [str(root / "gan" / "model.pt")], **shards}
    if recovery:
        inputs["recovery_model"] = [str(root / "cnn" / "model.pt")]
    config = {
        "seed": SEED,
        "data": {"source": source, "suite": "IllustrisTNG", "map_size": SIZE, "box_size": BOX},
    }
    out = root / f"emulator_{source}.json"
    result = get_family("gan2d").evaluate(
        "emulator", inputs, out, settings=settings, config=config, threads=1
    )
    assert json.loads(out.read_text())["summary"] == result["summary"]
    return result


def test_floor_is_small_baseline_gets_pk_and_an_untrained_gan_is_far(trained):
    root, shards, settings = trained
    result = _evaluate(root, shards, settings, "synthetic", recovery=True)
    assert result["n_test_sims"] == 4 and result["maps_per_sim"] == 15
    assert result["pairs"] == ["Mgas-HI", "Mgas-B", "HI-B"]
    for field in FIELDS:
        row = result["summary"]["fields"][field]
        # Fresh maps of the same parameters differ only by sample variance.
        assert row["spectrum"]["floor"] < 0.3 and row["pdf"]["floor"] < 0.1
        # One epoch of a tiny GAN: far from the floor, but the regressions of the training
        # simulations' pixel distributions its quantile map applies are close.
        assert row["pdf"]["network"] > 2 * row["pdf"]["floor"]
        assert row["pdf"]["gan"] < 0.5 * row["pdf"]["network"]
    # Mgas is exactly a log-normal field: the two-point baseline matches its P(k) and PDF.
    mgas = result["summary"]["fields"]["Mgas"]
    assert mgas["spectrum"]["baseline"] < 0.35 and mgas["pdf"]["baseline"] < 0.1
    for pair in result["pairs"]:
        assert result["summary"]["pairs"][pair]["correlation"]["floor"] < 0.1
    recovery = result["recovery"]
    assert recovery["names"] == ["Omega_m", "sigma_8"]  # the columns of truth and predictions
    truth = np.array(recovery["truth"])
    assert truth[:, 0].min() >= 0.1 and truth[:, 0].max() <= 0.5  # Omega_m's LH range
    assert np.array(recovery["predicted_gan"]).shape == (60, 2)
    assert all(set(s) == {"real", "gan", "ratio"} for s in recovery["params"].values())
    # Every report figure draws from the JSON alone.
    family = get_family("gan2d")
    for figure in family.figures[1:]:
        out = root / "figures" / f"{figure.name}.png"
        family.plot(figure.name, [str(root / "emulator_synthetic.json")], str(out), [])
        assert out.stat().st_size > 1000, figure.name


def test_real_data_floor_splits_each_simulation_in_halves(trained):
    root, shards, settings = trained
    result = _evaluate(root, shards, settings, "local", recovery=False)
    assert result["floor"] == "halves of each simulation's maps"
    assert "recovery" not in result
    ratios = np.array(result["curves"]["ratio_floor"])
    assert ratios.shape == (3, len(FIELDS), SIZE // 2)


def test_generated_cmd_files_pass_the_download_checks_and_train_a_cnn2d(trained, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import h5py
    import yaml

    from astroflow.maps.local import cmd_folder_shape, link_cmd_file

    root, shards, settings = trained
    settings = {**settings, "samples": {"grid": {"latin_hypercube": 8, "sims": 1}}}
    config = {"seed": SEED, "data": {"suite": "IllustrisTNG", "set": "LH"}}
    folder = tmp_path / "grid"
    get_family("gan2d").sample(
        "grid",
        root / "gan" / "model.pt",
        tmp_path / "grid.h5",
        folder,
        settings=settings,
        config=config,
        threads=1,
    )
    with h5py.File(tmp_path / "grid.h5", "r") as h5:
        assert h5["maps"].shape == (8 * 15, 3, SIZE, SIZE)
        assert list(h5.attrs["fields"]) == FIELDS
    for field in FIELDS:
        assert cmd_folder_shape(folder, "IllustrisTNG", "LH", field) == (8, SIZE)
    for path in folder.iterdir():  # the checks of a downloaded or linked file
        link_cmd_file(path, tmp_path / "links" / path.name, n_sims=8, map_size=SIZE)
    # The same folder through the config alone: data.source local, a cnn2d experiment.
    repo = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((repo / "config" / "test.yaml").read_text())
    cfg["data"] = {
        "source": "local",
        "path": str(folder),
        "set": "LH",
        "fields": FIELDS,
        "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
    }
    cfg["experiments"] = {
        "cnn2d_generated": {"fields": FIELDS, "params": ["Omega_m"], "epochs": 1, "hidden": 4}
    }
    cfg_path = tmp_path / "generated.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    code = "import sys; from snakemake.cli import main; sys.argv[0] = 'snakemake'; main()"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "-s",
            str(repo / "Snakefile"),
            "-d",
            str(tmp_path / "wf"),
            "results/cnn2d_generated/metrics.json",
            "--cores",
            "1",
            "--configfile",
            str(cfg_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((tmp_path / "wf/results/cnn2d_generated/metrics.json").read_text())
    assert metrics["n_maps"] == 2 * 15


def test_sample_tables_take_rows_or_a_latin_hypercube_inside_the_lh_ranges():
    from astroflow.families.base import SettingError
    from astroflow.families.gan2d import check_sample_table
    from astroflow.families.gan2d.sampling import parameter_rows

    rows = parameter_rows("fid", {"params": [[0.3, 0.8, 1, 1, 1, 1]], "sims": 1}, 0)
    assert rows.tolist() == [[0.3, 0.8, 1, 1, 1, 1]]
    lh = parameter_rows("lh", {"latin_hypercube": 5, "sims": 1}, 0)
    assert lh.shape == (5, 6) and np.array_equal(
        lh, parameter_rows("lh", {"latin_hypercube": 5}, 0)
    )
    assert not np.array_equal(lh, parameter_rows("other", {"latin_hypercube": 5}, 0))
    with pytest.raises(SettingError, match="either params"):
        check_sample_table("x", {"params": [[0.3] * 6], "latin_hypercube": 2})
    with pytest.raises(SettingError, match="Omega_m"):
        check_sample_table("x", {"params": [[0.9, 0.8, 1, 1, 1, 1]]})
