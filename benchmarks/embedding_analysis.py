"""The chunked embedding analysis at 10^5 maps: time and peak memory against the budget.

Writes ``--maps`` embeddings of ``--dim`` dimensions as per-shard files (the layout of
:mod:`astroflow.embed`, 500 maps per shard, splits 70/15/15) and runs
:func:`astroflow.embedding_analysis.analyse` on them in a fresh process, so that its peak
resident memory is the analysis's own. The embeddings are a smooth non-linear image of six
parameters per simulation (15 maps each) plus per-map noise: they have the structure t-SNE
and the clusters should find, at the cost a real embedding would have. Budget:
<= 360 s and <= 3 GB on 2 cores; the table gives each stage and the ratio to the budget,
and the CPU time of all threads with the load average, since on a shared machine the wall
time depends on the neighbours (CPU time / threads is the wall time of an idle node).

    python benchmarks/embedding_analysis.py [--maps 100000] [--dim 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from astroflow.embed import write_embeddings
from astroflow.maps.cmd import PARAM_NAMES

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "embedding_analysis.json"
BUDGET_SECONDS = 360.0
BUDGET_MB = 3000.0
MAPS_PER_SHARD = 500
MAPS_PER_SIM = 15
ANALYSIS = {
    "pca_components": 50,
    "perplexity": 30,
    "n_clusters": 6,
    "silhouette_sample": 5000,
    "chunk_rows": 20000,
    "tsne_iterations": 500,
}

RUNNER = """
import json, sys
from astroflow.embedding_analysis import analyse
job = json.loads(sys.argv[1])
result = analyse(job["paths"], job["out"], analysis=job["analysis"], colour_by=["Omega_m"],
                 seed=0, n_jobs=job["threads"])
print(json.dumps(result))
"""


def write_shards(directory: Path, n_maps: int, dim: int, seed: int = 0) -> list[str]:
    """Per-shard embedding files of ``n_maps`` maps; returns their paths in order."""
    rng = np.random.default_rng(seed)
    n_sims = -(-n_maps // MAPS_PER_SIM)
    params = rng.uniform(0.0, 1.0, (n_sims, len(PARAM_NAMES))).astype(np.float32)
    hidden = rng.standard_normal((len(PARAM_NAMES), 64))
    readout = rng.standard_normal((64, dim)) / 8.0
    paths = []
    for shard, lo in enumerate(range(0, n_maps, MAPS_PER_SHARD)):
        rows = np.arange(lo, min(n_maps, lo + MAPS_PER_SHARD))
        sim = rows // MAPS_PER_SIM
        latent = np.tanh(params[sim] @ hidden * 2.0)
        features = latent @ readout + 0.05 * rng.standard_normal((len(rows), dim))
        split = "train" if lo < 0.7 * n_maps else "val" if lo < 0.85 * n_maps else "test"
        path = directory / f"{shard:04d}.h5"
        write_embeddings(
            path,
            features.astype(np.float32),
            sim_id=sim.astype(np.int64),
            map_index=(rows % MAPS_PER_SIM).astype(np.int64),
            params_raw=params[sim],
            param_names=PARAM_NAMES,
            fields=["Mgas"],
            model_path="benchmark",
        )
        with h5py.File(path, "r+") as h5:
            h5.attrs["split"] = split
        paths.append(str(path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        paths = write_shards(Path(tmp), args.maps, args.dim)
        written = time.perf_counter() - start
        job = {
            "paths": paths,
            "out": str(Path(tmp) / "analysis"),
            "analysis": ANALYSIS,
            "threads": args.threads,
        }
        start, load_before = time.perf_counter(), os.getloadavg()[0]
        done = subprocess.run(
            [sys.executable, "-c", RUNNER, json.dumps(job)],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - start
        load = (load_before + os.getloadavg()[0]) / 2
    result = json.loads(done.stdout.splitlines()[-1])

    print(
        f"{args.maps:,} x {args.dim} embeddings in {len(paths)} shard files "
        f"(written in {written:.0f} s), {args.threads} threads"
    )
    print(f"{'stage':<10} {'seconds':>8} {'CPU s':>8} {'peak RSS MB':>12}")
    for name, stage in result["stages"].items():
        print(
            f"{name:<10} {stage['seconds']:>8.1f} {stage['cpu_seconds']:>8.1f} "
            f"{stage['peak_rss_mb']:>12.0f}"
        )
    cpu = result["total_cpu_seconds"]
    print(f"{'process':<10} {wall:>8.1f} {cpu:>8.1f} {result['peak_rss_mb']:>12.0f}")
    print(f"load average over the run: {load:.1f} on {os.cpu_count()} cores")
    print(
        f"budget: {wall / BUDGET_SECONDS:.2f} x {BUDGET_SECONDS:.0f} s, "
        f"{result['peak_rss_mb'] / BUDGET_MB:.2f} x {BUDGET_MB:.0f} MB; "
        f"silhouette {result['silhouette']:.3f}"
    )
    summary = {
        "maps": args.maps,
        "dim": args.dim,
        "threads": args.threads,
        "analysis": ANALYSIS,
        "stages": result["stages"],
        "process_seconds": round(wall, 1),
        "cpu_seconds": cpu,
        "load_average": round(load, 1),
        "peak_rss_mb": result["peak_rss_mb"],
        "time_ratio_to_budget": round(wall / BUDGET_SECONDS, 3),
        "memory_ratio_to_budget": round(result["peak_rss_mb"] / BUDGET_MB, 3),
        "silhouette": result["silhouette"],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
