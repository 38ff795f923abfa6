"""Dry runs of the workflow: DAG shape, partial targets, config errors, no torch at parse time."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args: str, cwd: Path, block_torch: bool = False) -> subprocess.CompletedProcess:
    """Run the Snakemake CLI on this repository's workflow with ``cwd`` as working directory."""
    prelude = "import sys; sys.modules['torch'] = None; " if block_torch else "import sys; "
    code = prelude + "from snakemake.cli import main; sys.argv[0] = 'snakemake'; main()"
    command = [sys.executable, "-c", code, "-s", str(ROOT / "Snakefile"), "-d", str(cwd), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def planned_jobs(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run into {rule: count}."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ") and "count" in line)
    for line in lines[start + 2 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_default_dag_parses_without_torch(tmp_path):
    result = snakemake("-n", "--quiet", "rules", cwd=tmp_path, block_torch=True)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs["synthesize_maps"] == 1
    # two cnn2d, a four-value classifier sweep, one vicreg, one cnn3d, one srgan3d (no
    # inference or embeddings: it is judged by its superres evaluation), one gan2d (likewise:
    # emulator.json); only the last member of the sweep is embedded and drawn in full; vicreg
    # predicts nothing but is embedded and evaluated (evaluation.json, evolution.json)
    assert jobs["train"] == 10 and jobs["infer"] == 7 and jobs["embed"] == 5
    assert jobs["synthesize_volumes"] == 4 + 1 + 1 and jobs["evaluate"] == 4
    assert jobs["sample"] == 1  # gan2d's samples/lh
    assert jobs["plot_sweep"] == 1
    # 3,000 maps at 500 per shard: 2100/450/450 maps -> 5 + 1 + 1 shards.
    assert jobs["format_shards"] == 7
    assert jobs["synthesize_cubes"] == 16 + 2 + 2
    assert jobs["write_cube_examples"] == 1
    assert jobs["plot_figure"] == 2 * 3 + 3 * 1 + 5 + 4 + 4 + 6 + 4  # each family's figures
    assert "predict_fits" not in jobs  # the real-data folder is empty


def test_each_fits_cube_in_the_real_data_folder_becomes_a_target(tmp_path):
    (tmp_path / "data" / "real_cubes").mkdir(parents=True)
    for name in ("L1544.fits", "B68.fits", "NGC1333.FITS", "notes.txt"):
        (tmp_path / "data" / "real_cubes" / name).write_bytes(b"")
    result = snakemake("-n", "--quiet", "rules", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert planned_jobs(result.stdout + result.stderr)["predict_fits"] == 3


def test_camels_config_plans_downloads_and_full_scale_shards(tmp_path):
    config = ROOT / "config" / "camels.yaml"
    result = snakemake("-n", "--quiet", "rules", "--configfile", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs["download_cmd"] == 4  # Mgas, HI, B and the parameter table
    assert "synthesize_maps" not in jobs
    # 15,000 maps, 800/100/100 simulations, 500 maps per shard: 24 + 3 + 3 shards.
    assert jobs["format_shards"] == 30
    assert "synthesize_cubes" not in jobs  # no cnn3d experiment: no cubes


def test_the_scale_config_embeds_every_shard_and_analyses_them_once(tmp_path):
    config = ROOT / "config" / "embeddings-100k.yaml"
    result = snakemake("-n", "--quiet", "rules", "--configfile", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout + result.stderr)
    # 6,667 simulations of 15 maps at 2,500 maps per shard: 28 + 7 + 6 shards.
    assert jobs["format_shards"] == jobs["embed_shard"] == 41
    assert jobs["analyse_embeddings"] == jobs["train"] == 1
    # The evaluation reads those embeddings rather than embedding 10^5 maps once more.
    target = "results/vicreg_100k/evaluation.json"
    result = snakemake(target, "-n", "--quiet", "rules", "--configfile", str(config), cwd=tmp_path)
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs["embed_shard"] == 41 and "analyse_embeddings" not in jobs


def test_single_target_plans_only_its_ancestors(tmp_path):
    config = ROOT / "config" / "test.yaml"
    target = "results/cnn2d_mgas/figures/tsne.png"
    result = snakemake(target, "-n", "--quiet", "rules", "--configfile", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs.pop("total") == sum(jobs.values())
    assert jobs == {
        "synthesize_maps": 1,
        "compute_stats": 1,
        "format_shards": 4,  # 180 train maps -> 2 shards, 60 val -> 1, 60 test -> 1
        "train": 1,
        "embed": 1,
        "tsne": 1,
        "cluster": 1,
        "plot_figure": 1,
    }


def test_bad_config_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "config" / "test.yaml").read_text().replace("epochs: 2", 'epochs: "ten"', 1)
    bad.write_text(text)
    result = snakemake("--cores", "1", "--configfile", str(bad), cwd=tmp_path)
    assert result.returncode != 0
    assert "experiments.cnn2d_mgas.epochs" in result.stderr
    assert "expected a value of type integer" in result.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("flag", ["--lint"])
def test_workflow_lint_is_clean(tmp_path, flag):
    result = snakemake(flag, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_suite_classifier_adds_the_raw_files_and_shards_of_its_suites(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["data"]["map_size"] = 64
    config["experiments"] = {
        "tng_vs_simba": {
            "model": "classifier",
            "classes": "suites",
            "suites": ["IllustrisTNG", "SIMBA"],
            "fields": ["HI"],
        }
    }
    path = tmp_path / "suites.yaml"
    path.write_text(yaml.safe_dump(config))
    target = "results/tng_vs_simba/model.pt"
    result = snakemake(target, "-n", "--quiet", "rules", "--configfile", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout + result.stderr)
    assert jobs["synthesize_maps"] == jobs["compute_stats"] == 2  # one per suite
    assert jobs["format_shards"] == 2 * 3  # train and val shards of each suite (2 + 1)
    assert jobs["train"] == 1
