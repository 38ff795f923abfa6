"""CMD files used in place (data.source: local): validated, linked not copied, their shape
taken from the files, and a cnn2d experiment trained on another set and size through them."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from astroflow.config import ConfigError, validate_config
from astroflow.maps.local import cmd_folder_shape, link_cmd_file
from astroflow.maps.synthetic import write_synthetic_cmd

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SUITE, SET = "IllustrisTNG", "CV"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A CMD folder of another set (CV) and size (32 px): 6 simulations of Mgas and HI."""
    path = tmp_path_factory.mktemp("cmd")
    write_synthetic_cmd(path, SUITE, SET, ["Mgas", "HI"], 6, 32, 25.0, 5)
    return path


def local_config(folder: Path, **data) -> dict:
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["data"] = {
        "source": "local",
        "path": str(folder),
        "set": SET,
        "fields": ["Mgas", "HI"],
        "splits": {"train": 0.5, "val": 0.25, "test": 0.25},
        **data,
    }
    config["experiments"] = {
        "cnn2d_mgas": {"fields": ["Mgas"], "params": ["Omega_m"], "epochs": 1, "hidden": 4}
    }
    return config


def test_the_shape_comes_from_the_files(folder):
    assert cmd_folder_shape(folder, SUITE, SET, "HI") == (6, 32)
    config = validate_config(local_config(folder), SCHEMA)
    assert (config["data"]["n_sims"], config["data"]["map_size"]) == (6, 32)


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"map_size": 64}, "data.map_size", "have 32"),
        ({"n_sims": 200}, "data.n_sims", "have 6"),
        ({"path": None}, "data.path", "required"),
        ({"set": "LH"}, "data.path", "Maps_Mgas_IllustrisTNG_LH_z=0.00.npy: no such file"),
    ],
)
def test_a_config_that_does_not_fit_the_files_names_the_key(folder, data, key, expected):
    with pytest.raises(ConfigError, match=rf"'{key}'.*{expected}"):
        validate_config(local_config(folder, **data), SCHEMA)


def test_a_file_is_validated_and_linked_not_copied(folder, tmp_path):
    source = folder / "Maps_Mgas_IllustrisTNG_CV_z=0.00.npy"
    dest = link_cmd_file(source, tmp_path / "raw" / source.name, 6, 32)
    assert dest.is_symlink() and dest.resolve() == source.resolve()
    np.testing.assert_array_equal(np.load(dest, mmap_mode="r")[3], np.load(source)[3])
    with pytest.raises(ValueError, match=r"shape \(90, 32, 32\), expected \(105, 32, 32\).*n_sims"):
        link_cmd_file(source, tmp_path / "other" / source.name, 7, 32)
    assert not (tmp_path / "other" / source.name).exists()


@pytest.mark.workflow
def test_a_cnn2d_experiment_trains_on_files_in_place(folder, tmp_path):
    config = tmp_path / "local.yaml"
    config.write_text(yaml.safe_dump(local_config(folder)))
    code = "import sys; from snakemake.cli import main; sys.argv[0] = 'snakemake'; main()"
    command = [sys.executable, "-c", code, "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path)]
    target = "results/cnn2d_mgas/metrics.json"
    run = subprocess.run(
        [*command, target, "--cores", "2", "--configfile", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    raw = tmp_path / "data" / "raw" / "cmd" / f"{SUITE}_{SET}"
    links = sorted(raw.iterdir())
    assert len(links) == 3 and all(p.is_symlink() for p in links)  # two fields, one table
    on_disk = sum(os.lstat(p).st_size for p in links)
    assert on_disk < 1000  # links, not 2 x 90 maps of 32^2 float32
    assert (tmp_path / target).stat().st_size > 0
