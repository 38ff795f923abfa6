"""Dry-run time of the workflow per config, against the bare Snakemake start-up in the same run.

Every cluster job re-parses the workflow, and a user runs `snakemake -n` before every change, so
parsing and DAG building must take seconds even at the full CMD scale (target: <= 5 s for
config/camels.yaml). Prints a table and writes benchmarks/results/dryrun.json.

    python benchmarks/dryrun.py [--repeats 3]

The start-up baseline matters: the SLURM executor plugin runs `scontrol show config` when it is
imported, which blocks for about 10 s on a machine that has the SLURM client but no reachable
controller (a laptop with the Debian packages, or the test machine after slurm-down.sh). On a
login node with a live controller, or without the plugin, start-up is about 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "dryrun.json"
TARGET_S = 5.0
SNAKEMAKE = [sys.executable, "-c", "import sys; from snakemake.cli import main; main()"]


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return elapsed, result.stdout + result.stderr


def job_count(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("total"):
            return int(line.split()[1])
    raise RuntimeError("no job count in the dry-run output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        startup = [timed([*SNAKEMAKE, "--version"])[0] for _ in range(args.repeats)]
        baseline = statistics.median(startup)
        rows.append({"case": "snakemake --version", "jobs": 0, "seconds": baseline, "ratio": 1.0})
        for name in ("test.yaml", "config.yaml", "camels.yaml"):
            command = [
                *SNAKEMAKE,
                *("-s", str(ROOT / "Snakefile"), "-d", workdir, "-n", "--quiet", "rules"),
                *("--configfile", str(ROOT / "config" / name)),
            ]
            runs = [timed(command) for _ in range(args.repeats)]
            seconds = statistics.median(t for t, _ in runs)
            rows.append(
                {
                    "case": f"dry run {name}",
                    "jobs": job_count(runs[0][1]),
                    "seconds": seconds,
                    "ratio": seconds / baseline,
                }
            )

    print(f"{'case':<24} {'jobs':>6} {'seconds':>8} {'x startup':>10}")
    for row in rows:
        print(f"{row['case']:<24} {row['jobs']:>6} {row['seconds']:>8.2f} {row['ratio']:>10.2f}")
    camels = next(r for r in rows if r["case"] == "dry run camels.yaml")
    verdict = "meets" if camels["seconds"] <= TARGET_S else "MISSES"
    print(f"camels dry run {camels['seconds']:.2f} s {verdict} the {TARGET_S:.0f} s target")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps({"target_s": TARGET_S, "repeats": args.repeats, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
