"""The SLURM and PBS profiles on a real local SLURM: GPU rules on GPU nodes, nothing resubmitted."""

import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# What the profiles submit: per experiment one GPU job for training and inference and one for
# the embeddings and their analysis, evaluations on their own, one CPU job for all map data
# and one for all cube shards. Grouping must at least halve the submissions of the same run
# with every job on its own (the test config of the three first experiments went from 27
# jobs to 8).
GPU_GROUPS = ("gpu_", "analysis_", "evaluate")
CPU_GROUPS = {"maps", "cubes"}
MAX_SLOWDOWN = 2.5  # SLURM run wall time against the same config run locally
LOCAL_RULES = {
    "plot_example_maps",
    "plot_figure",
    "plot_sweep",
    "write_cube_examples",
    "plot_channel_maps",
    "plot_moment_maps",
}

pytestmark = pytest.mark.cluster


def snakemake(workdir: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    code = "import sys; from snakemake.cli import main; sys.argv[0] = 'snakemake'; main()"
    command = [sys.executable, "-c", code, "-s", str(ROOT / "Snakefile"), "-d", str(workdir)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout)


def sacct_since(start: str) -> list[dict[str, str]]:
    """Allocations (one row per job) submitted since ``start``: id, rule, partition, state, TRES."""
    fields = "JobID,Comment,JobName,Partition,State,AllocTRES"
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", start, f"--format={fields}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = [dict(zip(fields.split(","), line.split("|"), strict=True)) for line in out.splitlines()]
    return [row for row in rows if row["JobName"] not in {"hostname", "env"}]


def write_config(workdir: Path, multifield_gpus: int = 1) -> Path:
    """The test config; ``multifield_gpus`` > 1 trains cnn2d_multifield under torchrun."""
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["experiments"]["cnn2d_multifield"]["gpus"] = multifield_gpus
    path = workdir / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def job_context_line(log: Path) -> str:
    return next(line for line in log.read_text().splitlines() if "job context:" in line)


@pytest.fixture(scope="module")
def slurm_run(slurm, tmp_path_factory):
    """The tiny config through profiles/slurm (status checks sped up on the command line only),
    and the same config run locally on the same two cores, for the wall-time comparison."""
    config = write_config(tmp_path_factory.mktemp("config"), multifield_gpus=2)
    local = tmp_path_factory.mktemp("local")
    began = time.perf_counter()
    result = snakemake(local, "--cores", "2", "--configfile", str(config))
    local_wall = time.perf_counter() - began
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    workdir = tmp_path_factory.mktemp("slurm")
    start = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1)
    began = time.perf_counter()
    result = snakemake(
        workdir,
        *("--profile", str(ROOT / "profiles" / "slurm")),
        *("--configfile", str(config)),
        *("--slurm-init-seconds-before-status-checks", "2"),
        *("--cores", "2"),  # the test node's CPUs: the largest allocation a group may ask for
    )
    wall = time.perf_counter() - began
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    print(f"\nSLURM profile run: {wall:.0f} s; local run of the same config: {local_wall:.0f} s")
    return workdir, config, start, wall, local_wall


def ungrouped_submissions(config: Path, workdir: Path) -> int:
    """Cluster jobs of a run of ``config`` with every job submitted on its own: the jobs of a
    plain dry run from scratch but the local rules."""
    workdir.mkdir(exist_ok=True)
    result = snakemake(workdir, "-n", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    counts = {}
    for line in (result.stdout + result.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    local = LOCAL_RULES | {"summary", "resources_page", "all", "total"}
    return sum(n for rule, n in counts.items() if rule not in local)


def submission_name(row: dict[str, str]) -> str:
    """What a SLURM job ran, from the comment the executor plugin sets: a group job's is its
    group and its rules, e.g. ``gpu_cnn2d_mgas_infer_train``."""
    return row["Comment"].removeprefix("rule_").split("_wildcards_")[0]


GROUPED_RULES = (
    "train",
    "infer",
    "embed",
    "tsne",
    "cluster",
    "synthesize_maps",
    "compute_stats",
    "format_shards",
    "synthesize_cubes",
    "synthesize_volumes",
)


def group_of(name: str) -> str:
    """The group of a submission name (``maps``, ``cubes``, ``gpu_<experiment>`` ...): the
    name without the rules the plugin appends; a job submitted alone keeps its rule name."""
    stripped = True
    while stripped:
        stripped = False
        for rule in GROUPED_RULES:
            if name.endswith(f"_{rule}"):
                name, stripped = name.removesuffix(f"_{rule}"), True
    return name


def test_groups_halve_the_submissions_and_land_on_the_right_partitions(slurm_run):
    workdir, _, start, wall, local_wall = slurm_run
    jobs = sacct_since(start)
    groups = sorted(group_of(submission_name(row)) for row in jobs)
    print(f"jobs submitted: {len(jobs)}: {', '.join(map(submission_name, jobs))}")
    alone = ungrouped_submissions(slurm_run[1], workdir.parent / "dry")
    print(f"submissions: {len(jobs)} grouped, {alone} with every job on its own")
    assert len(jobs) <= alone / 2, groups
    assert set(groups) >= CPU_GROUPS, groups
    for row in jobs:
        group = group_of(submission_name(row))
        assert row["State"] == "COMPLETED", row
        if group == "gpu_cnn2d_multifield":
            assert row["Partition"] == "gpu" and "gres/gpu=2" in row["AllocTRES"], row
        elif group.startswith(GPU_GROUPS):
            assert row["Partition"] == "gpu" and "gres/gpu=1" in row["AllocTRES"], row
        else:
            assert group in CPU_GROUPS, group
            assert row["Partition"] == "cpu" and "gres/gpu" not in row["AllocTRES"], row
    for experiment in ("cnn2d_mgas", "cnn2d_multifield", "cnn3d_cores"):
        assert f"gpu_{experiment}" in groups and f"analysis_{experiment}" in groups
        for step in ("train", "infer", "embed"):
            context = job_context_line(workdir / "logs" / experiment / f"{step}.log")
            assert "SLURM_JOB_PARTITION=gpu" in context and "CUDA_VISIBLE_DEVICES=" in context
    context = job_context_line(workdir / "logs" / "IllustrisTNG_LH" / "compute_stats.log")
    assert "SLURM_JOB_PARTITION=cpu" in context and "CUDA_VISIBLE_DEVICES" not in context
    # Figures and the summary are local rules: no cluster job each.
    submitted = " ".join(map(submission_name, jobs))
    for rule in LOCAL_RULES | {"summary", "resources_page"}:
        assert rule not in submitted
    # Measured side by side and printed; not asserted until measured on a quiet machine.
    print(f"SLURM / local wall time: {wall / local_wall:.2f} (target {MAX_SLOWDOWN})")


def test_two_gpu_experiment_trains_with_world_size_two(slurm_run):
    """``gpus: 2`` runs torchrun with one process per GPU (gloo here: the GPUs are fake)."""
    workdir = slurm_run[0]
    log = (workdir / "logs" / "cnn2d_multifield" / "train.log").read_text()
    assert "starting torchrun: 2 processes" in log, log[-3000:]
    assert "world size 2 (gloo)" in log, log[-3000:]
    assert "world size 1" not in log


def test_second_invocation_submits_nothing(slurm_run):
    workdir, config, start = slurm_run[:3]
    before = len(sacct_since(start))
    result = snakemake(
        workdir,
        *("--profile", str(ROOT / "profiles" / "slurm")),
        *("--configfile", str(config)),
        *("--slurm-init-seconds-before-status-checks", "2"),
        *("--cores", "2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
    assert len(sacct_since(start)) == before


def test_failing_job_fails_the_run(slurm_run, tmp_path):
    """A corrupt raw file makes the statistics job fail on the cluster; Snakemake exits non-zero."""
    workdir, config = slurm_run[:2]
    raw = Path("data/raw/cmd/IllustrisTNG_LH")
    shutil.copytree(workdir / raw, tmp_path / raw)
    bad = tmp_path / raw / "Maps_HI_IllustrisTNG_LH_z=0.00.npy"
    np.save(bad, np.ones((7, 32, 32), dtype=np.float32))  # wrong number of maps
    result = snakemake(
        tmp_path,
        "data/shards/IllustrisTNG_LH/stats.json",
        *("--profile", str(ROOT / "profiles" / "slurm")),
        *("--configfile", str(config)),
        *("--slurm-init-seconds-before-status-checks", "2", "--retries", "0", "--cores", "2"),
    )
    assert result.returncode != 0
    assert not (tmp_path / "data/shards/IllustrisTNG_LH/stats.json").exists()
    log = (tmp_path / "logs/IllustrisTNG_LH/compute_stats.log").read_text()
    assert "Maps_HI_IllustrisTNG_LH_z=0.00.npy" in log


def test_pbs_profile_gives_the_gpu_rule_its_gpu(slurm, tmp_path):
    """The Torque dialect through slurm-wlm-torque's qsub: the training job gets a GPU."""
    config = write_config(tmp_path)
    start = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1)
    began = time.perf_counter()
    result = snakemake(
        tmp_path,
        "results/cnn2d_mgas/metrics.json",
        *("--profile", str(ROOT / "profiles" / "pbs")),
        *("--configfile", str(config)),
        *("--seconds-between-status-checks", "2", "--cores", "2"),
    )
    print(f"\nPBS profile run: {time.perf_counter() - began:.0f} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    jobs = sacct_since(start)
    by_name = {row["JobName"]: row for row in jobs}
    training = by_name["smk.group_gpu_c"]  # group gpu_cnn2d_mgas: training and inference
    assert training["Partition"] == "gpu" and "gres/gpu=1" in training["AllocTRES"], jobs
    assert "gres/gpu" not in by_name["smk.group_maps"]["AllocTRES"], jobs
    context = job_context_line(tmp_path / "logs" / "cnn2d_mgas" / "train.log")
    assert "CUDA_VISIBLE_DEVICES=" in context
