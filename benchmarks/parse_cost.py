"""What parsing the workflow costs a cluster job, for the full CMD config with every family.

Every cluster job starts by re-parsing the Snakefile and building the DAG of its own job, so
that cost is paid once per submission; it must stay small as families are added. Cases, each
the median of ``--repeats`` runs: bare start-up (``snakemake --version``), ``--list-rules``
(parse only), and one job's re-parse as the cluster job runs it (``--target-jobs`` of a
training job, ``--mode remote``, its input shards present as empty files; ``-n`` so nothing
runs). The config is config/camels.yaml plus one experiment of every registered family that
it lacks, taken from config/config.yaml. Wall and CPU seconds are both reported: CPU time is
what the parse costs, wall time what a job waits (the same on a quiet machine).

Target: the workflow's own share of a job's re-parse, the job's run minus the bare start-up,
<= 1.5 s wall on 2 cores. The start-up (Python, Snakemake and every installed plugin imported)
is Snakemake's and the same for any workflow; it is reported beside it. The SLURM plugin asks
``scontrol`` for the controller's configuration while it is imported, which blocks 10 s when
no controller answers: run this with the controller up (tests/cluster/slurm-up.sh) or without
a SLURM client, or the wall times measure that time-out. Prints a table and writes
benchmarks/results/parse_cost.json.

    python benchmarks/parse_cost.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from astroflow.config import load_config_file, validate_config  # noqa: E402
from astroflow.families import FAMILIES  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "parse_cost.json"
TARGET_S = 1.5
SNAKEMAKE = [sys.executable, "-c", "import sys; from snakemake.cli import main; main()"]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def models(config: dict) -> set[str]:
    """The families of a config's experiments, defaults applied."""
    checked = validate_config(json.loads(json.dumps(config)), SCHEMA)
    return {e["model"] for e in checked["experiments"].values()}


def all_families_config(path: Path) -> tuple[dict, str]:
    """camels.yaml with an experiment of every family it lacks; returns it and the experiment
    whose training job is re-parsed (the first of the config)."""
    config = load_config_file(ROOT / "config" / "camels.yaml")
    default = load_config_file(ROOT / "config" / "config.yaml")
    present = models(config)
    for name, experiment in default["experiments"].items():
        model = experiment.get("model")
        if model not in present:
            config["experiments"][name] = experiment
            present.add(model)
    missing = set(FAMILIES) - models(config)
    if missing:
        raise SystemExit(f"no experiment of families {sorted(missing)} in config/config.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return config, next(iter(config["experiments"]))


def timed(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system of the child) of one run, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result.stdout + result.stderr


def training_inputs(base: list[str], experiment: str, cwd: Path) -> int:
    """Create the training job's input files (empty): a cluster job finds them written."""
    _, _, out = timed([*base, "-n", "-p", f"results/{experiment}/model.pt"], cwd)
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip() == "rule train:")
    inputs = next(line for line in lines[at:] if line.strip().startswith("input:"))
    paths = [p.strip() for p in inputs.split(":", 1)[1].split(",")]
    for path in paths:
        (cwd / path).parent.mkdir(parents=True, exist_ok=True)
        (cwd / path).touch()
    return len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config, experiment = all_families_config(workdir / "all_families.yaml")
        base = [
            *SNAKEMAKE,
            *("-s", str(ROOT / "Snakefile")),
            *("--configfile", str(workdir / "all_families.yaml")),
        ]
        n_inputs = training_inputs(base, experiment, workdir)
        cases = {
            "snakemake --version": [*SNAKEMAKE, "--version"],
            "--list-rules": [*base, "--list-rules"],
            f"train job re-parse ({n_inputs} input shards)": [
                *base,
                *("--target-jobs", f"train:experiment={experiment}"),
                *("--allowed-rules", "train", "--cores", "1", "--nolock"),
                *("--mode", "remote", "-n"),
            ],
        }
        rows = []
        env_note = "SLURM client present" if _has_sbatch() else "no SLURM client"
        for case, command in cases.items():
            runs = [timed(command, workdir)[:2] for _ in range(args.repeats)]
            rows.append(
                {
                    "case": case,
                    "wall_s": statistics.median(w for w, _ in runs),
                    "cpu_s": statistics.median(c for _, c in runs),
                }
            )

    families = sorted(models(config))
    print(f"config: camels.yaml + every family ({', '.join(families)}); {env_note}")
    print(f"{'case':<42} {'wall s':>7} {'cpu s':>7}")
    for row in rows:
        print(f"{row['case']:<42} {row['wall_s']:>7.2f} {row['cpu_s']:>7.2f}")
    own = {
        "wall_s": rows[-1]["wall_s"] - rows[0]["wall_s"],
        "cpu_s": rows[-1]["cpu_s"] - rows[0]["cpu_s"],
    }
    verdict = "meets" if own["wall_s"] <= TARGET_S else "MISSES"
    print(
        f"the workflow's share of one job's re-parse: {own['wall_s']:.2f} s wall, "
        f"{own['cpu_s']:.2f} s CPU; {verdict} the {TARGET_S} s target"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "target_s": TARGET_S,
                "repeats": args.repeats,
                "families": families,
                "experiments": len(config["experiments"]),
                "slurm_client": _has_sbatch(),
                "rows": rows,
                "workflow_share_of_job_reparse": own,
            },
            indent=2,
        )
        + "\n"
    )


def _has_sbatch() -> bool:
    return any(Path(d, "sbatch").exists() for d in os.environ.get("PATH", "").split(os.pathsep))


if __name__ == "__main__":
    main()
