"""End to end: the tiny config through the whole DAG, the report, and what a change reruns."""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits
from cube_factory import write_frequency_cube

from astroflow.cubes.fits import write_shard_examples
from astroflow.cubes.shards import write_cube_shard

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"
EXPERIMENTS = ("cnn2d_mgas", "cnn2d_multifield")
CUBE_EXPERIMENT = "cnn3d_cores"

pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    code = "import sys; from snakemake.cli import main; sys.argv[0] = 'snakemake'; main()"
    command = [sys.executable, "-c", code, "-s", str(ROOT / "Snakefile"), "-d", str(workdir)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=900)


def planned_rules(result: subprocess.CompletedProcess) -> dict[str, int]:
    """{rule: job count} from the 'Job stats' table of a dry run (empty when nothing to do)."""
    counts: dict[str, int] = {}
    lines = (result.stdout + result.stderr).splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("job ") and "count" in line]
    for line in lines[starts[0] + 2 :] if starts else []:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    counts.pop("total", None)
    return counts


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One complete run of config/test.yaml (about a minute on 2 cores), shared by the tests.

    A real-looking PPV cube waits in the real-data folder: a core of the test config's cubes
    written as FITS, then rewritten with a frequency axis in Hz, half-width channels and the
    source moved to +5 km/s (the config's velocity offset).
    """
    workdir = tmp_path_factory.mktemp("run")
    config = workdir / "config.yaml"
    settings = yaml.safe_load(TEST_CONFIG.read_text())
    settings["cubes"]["velocity_offset_kms"] = 5.0
    config.write_text(yaml.safe_dump(settings))
    scratch = tmp_path_factory.mktemp("observed")
    shard = write_cube_shard(settings["cubes"]["core"], "real", 0, 1, 99, scratch / "s.h5")
    (example,) = write_shard_examples(shard, scratch, 1)
    (workdir / "data" / "real_cubes").mkdir(parents=True)
    write_frequency_cube(
        example, workdir / "data/real_cubes/L1544_like.fits", velocity_shift_kms=5.0
    )
    result = snakemake(workdir, "--cores", "2", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, config


def test_every_product_is_written(finished_run):
    workdir, _ = finished_run
    for experiment in EXPERIMENTS:
        base = workdir / "results" / experiment
        for name in ("model.pt", "train_log.csv", "predictions.h5", "metrics.json"):
            assert (base / name).stat().st_size > 0, name
        for figure in ("training_curves", "predictions", "tsne"):
            assert (base / "figures" / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert list((base / "tensorboard").glob("events.out.tfevents.*"))
    assert (workdir / "results" / "IllustrisTNG_LH" / "figures" / "example_maps.png").exists()
    base = workdir / "results" / CUBE_EXPERIMENT
    for figure in ("training_curves", "profiles", "residual_maps", "tsne"):
        assert (base / "figures" / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for figure in ("channel_maps", "moment_maps"):
        assert (workdir / "results" / "cores" / "figures" / f"{figure}.png").stat().st_size > 0
    assert not (base / "figures" / "predictions.png").exists()
    assert not list(workdir.rglob("*.part")), "temporary files left behind"
    sweep = json.loads((workdir / "results/classify_phases/sweep.json").read_text())
    assert sweep["values"] == [0.0, 2.0]
    assert set(sweep["metrics"]) == {"CNN test accuracy", "P(k) + moments baseline"}
    assert (workdir / "results/classify_phases/figures/sweep.png").stat().st_size > 0
    last = workdir / "results/classify_phases_strength_2/figures"
    assert {p.stem for p in last.glob("*.png")} == {
        "training_curves",
        "roc",
        "confusion",
        "confident_maps",
        "tsne",
    }


def test_the_vicreg_experiment_is_judged_against_both_baselines(finished_run):
    workdir, _ = finished_run
    base = workdir / "results" / "vicreg_mgas"
    for figure in ("training_curves", "tsne", "cluster_gallery", "embedding_evolution"):
        assert (base / "figures" / f"{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    evaluation = json.loads((base / "evaluation.json").read_text())
    assert set(evaluation["probes"]) == {"vicreg", "supervised", "pixel_pca"}
    assert evaluation["supervised_experiment"] == "cnn2d_mgas"
    assert len(json.loads((base / "evolution.json").read_text())["xy"]) in (1, 2)
    assert not (base / "metrics.json").exists()


def test_cube_experiment_beats_the_baseline_and_keeps_its_products_consistent(finished_run):
    workdir, config_path = finished_run
    cubes = yaml.safe_load(config_path.read_text())["cubes"]
    base = workdir / "results" / CUBE_EXPERIMENT
    n_test = cubes["shards"]["test"] * cubes["cores_per_shard"]
    assert len(list((workdir / "data/cubes/cores/train").glob("*.h5"))) == cubes["shards"]["train"]
    with fits.open(workdir / "data/cubes/cores/examples/core_000.fits") as hdul:
        header = hdul[0].header
    assert (header["CTYPE3"], header["CUNIT3"], header["BUNIT"]) == ("VRAD", "km/s", "K")
    metrics = json.loads((base / "metrics.json").read_text())
    assert metrics["n_cubes"] == n_test
    assert metrics["ratio"]["density_rmse_dex"] < 0.9
    assert metrics["ratio"]["velocity_rmse_kms"] < 1.0
    with h5py.File(base / "predictions.h5") as f:
        assert f["density"].shape == (n_test, 8, 16, 16)
    clusters = json.loads((base / "clusters.json").read_text())
    assert len(pd.read_parquet(base / "tsne.parquet")) == len(clusters["labels"]) == n_test
    assert "knn_r2_central_density" in clusters


def test_real_fits_cube_gets_profile_cubes_with_its_sky_wcs(finished_run):
    workdir, _ = finished_run
    source = fits.getheader(workdir / "data/real_cubes/L1544_like.fits")
    real = workdir / "results" / CUBE_EXPERIMENT / "real"
    velocity = fits.getdata(real / "L1544_like_velocity.fits")
    density_header = fits.getheader(real / "L1544_like_density.fits")
    assert velocity.shape == (8, 16, 16)
    assert density_header["BUNIT"] == "cm-3" and density_header["CTYPE3"] == "LOSDEPTH"
    for key in ("CTYPE1", "CRVAL1", "CDELT1", "CTYPE2", "CRVAL2", "CDELT2"):
        assert density_header[key] == pytest.approx(source[key]), key
    assert 4.0 < float(np.mean(velocity)) < 6.0  # in the cube's frame, around its +5 km/s


def test_products_agree_with_each_other(finished_run):
    workdir, config_path = finished_run
    config = yaml.safe_load(config_path.read_text())
    stats = json.loads((workdir / "data/shards/IllustrisTNG_LH/stats.json").read_text())
    test_sims = set(stats["splits"]["test"])
    assert not test_sims & set(stats["splits"]["train"])
    for experiment in EXPERIMENTS:
        base = workdir / "results" / experiment
        metrics = json.loads((base / "metrics.json").read_text())
        params = config["experiments"][experiment]["params"]
        assert sorted(metrics["params"]) == sorted(params)
        assert metrics["n_maps"] == 15 * len(test_sims)
        with h5py.File(base / "predictions.h5") as f:
            assert set(f["sim_id"][:]) == test_sims
            assert (f["std"][:] > 0).all()
        tsne = pd.read_parquet(base / "tsne.parquet")
        clusters = json.loads((base / "clusters.json").read_text())
        assert len(tsne) == len(clusters["labels"]) == metrics["n_maps"]
        assert len(set(clusters["labels"])) == config["analysis"]["n_clusters"]
        assert -1 <= clusters["silhouette"] <= 1
        log = pd.read_csv(base / "train_log.csv")
        assert list(log["epoch"]) == list(range(1, config["experiments"][experiment]["epochs"] + 1))


def test_second_run_has_nothing_to_do(finished_run):
    workdir, config = finished_run
    result = snakemake(workdir, "-n", "--configfile", str(config))
    assert result.returncode == 0, result.stderr
    assert planned_rules(result) == {}


def test_learning_rate_change_reruns_only_that_experiment(finished_run):
    workdir, config = finished_run
    changed = workdir / "changed.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["experiments"]["cnn2d_mgas"]["lr"] = 0.0005
    changed.write_text(yaml.safe_dump(settings))
    result = snakemake(workdir, "-n", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr
    plan = planned_rules(result)
    assert plan == {
        "train": 1,
        "infer": 1,
        "embed": 1,
        "tsne": 1,
        "cluster": 1,
        "plot_figure": 3,  # training curves, predictions, t-SNE
        "evaluate": 1,  # vicreg_mgas compares its embedding with cnn2d_mgas's
        "summary": 1,
        "resources_page": 1,
        "all": 1,
    }
    outputs = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip().startswith("output:")
    ]
    assert any("results/cnn2d_mgas/model.pt" in line for line in outputs)
    assert not any("cnn2d_multifield" in line for line in outputs)


def test_report_shows_figures_config_and_metrics(finished_run):
    workdir, config = finished_run
    report = workdir / "report.html"
    result = snakemake(workdir, "--configfile", str(config), "--report", str(report))
    assert result.returncode == 0, result.stderr
    html = report.read_text(errors="replace")
    for name in ("example_maps.png", "training_curves.png", "predictions.png", "tsne.png"):
        assert name in html
    for name in ("channel_maps.png", "moment_maps.png", "profiles.png", "residual_maps.png"):
        assert name in html
    assert "summary.html" in html
    summary = (workdir / "results" / "summary.html").read_text()
    metrics = json.loads((workdir / "results/cnn2d_mgas/metrics.json").read_text())
    assert "Omega_m" in summary and "rmse" in summary
    assert f"{metrics['params']['Omega_m']['rmse']:.4g}" in summary
    assert "torch" in summary and "snakemake" in summary
    cube_metrics = json.loads((workdir / "results/cnn3d_cores/metrics.json").read_text())
    assert "baseline" in summary and "density_rmse_dex" in summary
    assert f"{cube_metrics['network']['density_rmse_dex']:.4g}" in summary
    assert f"{cube_metrics['baseline']['density_rmse_dex']:.4g}" in summary


def test_resources_page_matches_the_benchmark_files(finished_run):
    workdir, _ = finished_run
    table = pd.read_csv(workdir / "results/resources.tsv", sep="\t")
    benchmarks = sorted((workdir / "logs/benchmarks").rglob("*.tsv"))
    assert len(table) == len(benchmarks) > 20
    train = table[(table["rule"] == "train") & (table["job"] == "experiment=cnn2d_mgas")]
    measured = pd.read_csv(workdir / "logs/benchmarks/cnn2d_mgas/train.tsv", sep="\t")
    assert train["wall_s"].item() == pytest.approx(measured["s"].mean())
    assert train["max_rss_mb"].item() == pytest.approx(measured["max_rss"].mean())
    settings = yaml.safe_load(TEST_CONFIG.read_text())["experiments"]["cnn2d_mgas"]
    assert train["threads"].item() == settings.get("threads", 1)
    assert train["mem_mb"].item() == settings.get("mem_mb", 8000)  # the schema default
    assert set(table["rule"]) >= {"train", "infer", "embed", "tsne", "cluster", "format_shards"}
    assert table["threads"].notna().all(), "a benchmarked job without its request line"
    page = (workdir / "results/resources.html").read_text()
    assert "GPU hours per experiment" in page and "cnn2d_mgas" in page


def test_cube_params_change_reruns_only_the_analysis(finished_run):
    """The params of a cnn3d experiment describe its embeddings: no retraining."""
    workdir, config = finished_run
    changed = workdir / "cube_params.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["experiments"][CUBE_EXPERIMENT]["params"] = ["infall_speed", "central_density"]
    changed.write_text(yaml.safe_dump(settings))
    result = snakemake(workdir, "-n", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr
    assert planned_rules(result) == {
        "cluster": 1,
        "plot_figure": 1,
        "summary": 1,
        "resources_page": 1,
        "all": 1,
    }
