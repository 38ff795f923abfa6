"""What every job asked the scheduler for, next to what it used: the report's resources page.

Users guess ``mem_mb`` and ``runtime``; the benchmark files Snakemake writes for every heavy
job hold the answer (wall time, CPU time, peak resident memory) but nobody reads them. Each
job's log starts with a ``request:`` line (written by :func:`astroflow.runlog.log_to_file`:
rule, wildcards, threads and the resources the job was given, profile defaults and retry
scaling included); this module pairs it with the job's benchmark file, which sits at the
same path under ``logs/benchmarks/`` with ``.tsv`` for ``.log``, and says where a request is
far from the use.
"""

from __future__ import annotations

import csv
import html
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from astroflow.io import atomic_path

REQUEST_PREFIX = "request: "
"""Start of the log line that records a job's request (JSON follows)."""
OVER_REQUEST = 4.0
"""A request more than this many times the use gets advice to lower it."""
NEAR_LIMIT = 0.9
"""A use above this fraction of its limit gets advice to raise the limit."""
REQUESTED = ("threads", "mem_mb", "runtime", "gpu")
"""Resources a request line records (runtime in minutes)."""

COLUMNS = (
    "rule",
    "job",
    "threads",
    "mem_mb",
    "runtime_min",
    "gpus",
    "wall_s",
    "cpu_s",
    "max_rss_mb",
    "cores_used",
    "mem_ratio",
    "time_ratio",
    "advice",
)


@dataclass(frozen=True)
class JobUsage:
    """One job: its request (None where the log recorded none) and its benchmark."""

    rule: str
    job: str
    threads: int | None
    mem_mb: float | None
    runtime_min: float | None
    gpus: int
    wall_s: float
    cpu_s: float | None
    max_rss_mb: float | None

    @property
    def cores_used(self) -> float | None:
        """Average busy cores: CPU time over wall time."""
        if self.cpu_s is None or self.wall_s <= 0:
            return None
        return self.cpu_s / self.wall_s

    @property
    def mem_ratio(self) -> float | None:
        """Requested memory over peak resident memory."""
        if self.mem_mb is None or not self.max_rss_mb:
            return None
        return self.mem_mb / self.max_rss_mb

    @property
    def time_ratio(self) -> float | None:
        """Requested wall time over the wall time used."""
        if self.runtime_min is None or self.wall_s <= 0:
            return None
        return self.runtime_min * 60.0 / self.wall_s

    def advice(self) -> str:
        """Plain advice where a request is over 4x the use or the use is near a limit."""
        notes = []
        if self.mem_ratio is not None:
            suggested = max(100, round(2 * self.max_rss_mb, -2))
            if self.mem_ratio > OVER_REQUEST:
                notes.append(
                    f"mem_mb {self.mem_mb:.0f} is {self.mem_ratio:.0f}x the peak "
                    f"{self.max_rss_mb:.0f} MB: {suggested:.0f} would do"
                )
            elif 1.0 / self.mem_ratio > NEAR_LIMIT:
                notes.append(
                    f"peak memory {self.max_rss_mb:.0f} MB is within 10% of mem_mb "
                    f"{self.mem_mb:.0f}: raise it to {suggested:.0f}"
                )
        if self.time_ratio is not None:
            minutes = self.wall_s / 60.0
            if self.time_ratio > OVER_REQUEST and self.runtime_min > 10:
                notes.append(
                    f"runtime {self.runtime_min:.0f} min is {self.time_ratio:.0f}x the "
                    f"{minutes:.1f} min used: {max(10, 2 * minutes):.0f} would do"
                )
            elif 1.0 / self.time_ratio > NEAR_LIMIT:
                notes.append(f"used {minutes:.1f} of {self.runtime_min:.0f} min: raise runtime")
        busy = self.cores_used
        if self.threads and busy is not None and self.threads > OVER_REQUEST * max(busy, 0.25):
            notes.append(f"{self.threads} threads but {busy:.1f} cores busy on average")
        return "; ".join(notes)

    def row(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "cores_used": self.cores_used,
            "mem_ratio": self.mem_ratio,
            "time_ratio": self.time_ratio,
            "advice": self.advice(),
        }


def request_line(rule: str, wildcards: Any, threads: int, resources: Any) -> str:
    """The ``request:`` line of a job's log, from what Snakemake hands the job (``wildcards``
    and ``resources`` are its named lists, or mappings)."""
    given = dict(resources.items())
    request = {"rule": rule, "wildcards": dict(wildcards.items()), "threads": threads}
    for name in REQUESTED[1:]:
        value = given.get(name)
        if isinstance(value, int | float):
            request[name] = value
    return REQUEST_PREFIX + json.dumps(request)


def read_request(log: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The request recorded in a job's log, or None (no log, or a log without the line)."""
    try:
        with open(log) as stream:
            for line in stream:
                at = line.find(REQUEST_PREFIX)
                if at >= 0:
                    return json.loads(line[at + len(REQUEST_PREFIX) :])
    except FileNotFoundError:
        return None
    return None


def read_benchmark(path: str | os.PathLike[str]) -> dict[str, float | None]:
    """Wall seconds, CPU seconds and peak RSS (MB) of a Snakemake benchmark file (the mean of
    its repeats); CPU time and RSS are None where the file has 'NA'."""
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    if not rows:
        raise ValueError(f"benchmark file {path} has no measurement row")

    def mean(column: str) -> float | None:
        values = [row.get(column, "NA") for row in rows]
        if any(v in ("NA", "", None) for v in values):
            return None
        return sum(float(v) for v in values) / len(values)

    wall = mean("s")
    if wall is None:
        raise ValueError(f"benchmark file {path} has no wall time ('s' column)")
    return {"wall_s": wall, "cpu_s": mean("cpu_time"), "max_rss_mb": mean("max_rss")}


def log_of_benchmark(benchmark: Path, logs: Path) -> Path:
    """The log of the job a benchmark file measured: the same path below ``logs`` with
    ``.log`` (the workflow's convention; a test keeps the rules to it)."""
    relative = benchmark.relative_to(logs / "benchmarks")
    return logs / relative.with_suffix(".log")


def collect_usage(logs: str | os.PathLike[str] = "logs") -> list[JobUsage]:
    """Every benchmarked job under ``logs``, sorted by rule and job."""
    logs = Path(logs)
    jobs = []
    for benchmark in sorted((logs / "benchmarks").rglob("*.tsv")):
        measured = read_benchmark(benchmark)
        request = read_request(log_of_benchmark(benchmark, logs)) or {}
        wildcards = request.get("wildcards", {})
        rule = request.get("rule") or benchmark.stem
        job = " ".join(f"{k}={v}" for k, v in wildcards.items()) or str(
            benchmark.relative_to(logs / "benchmarks").with_suffix("")
        )
        jobs.append(
            JobUsage(
                rule=rule,
                job=job,
                threads=request.get("threads"),
                mem_mb=request.get("mem_mb"),
                runtime_min=request.get("runtime"),
                gpus=int(request.get("gpu", 0) or 0),
                **measured,
            )
        )
    return sorted(jobs, key=lambda j: (j.rule, j.job))


def gpu_hours(jobs: Sequence[JobUsage]) -> dict[str, float]:
    """GPU hours per experiment (GPUs held times wall time; 0 for jobs that held none)."""
    hours: dict[str, float] = {}
    for job in jobs:
        experiment = _experiment(job.job)
        if experiment is not None:
            hours[experiment] = hours.get(experiment, 0.0) + job.gpus * job.wall_s / 3600.0
    return dict(sorted(hours.items()))


def write_tsv(jobs: Sequence[JobUsage], path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS, delimiter="\t")
        writer.writeheader()
        for job in jobs:
            writer.writerow({k: _tsv(v) for k, v in job.row().items() if k in COLUMNS})


def write_page(jobs: Sequence[JobUsage], path: str | os.PathLike[str]) -> None:
    """One self-contained HTML page: the per-job table, advice and GPU hours."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = []
    for job in jobs:
        row = job.row()
        cells = "".join(f"<td>{html.escape(_cell(row[c]))}</td>" for c in COLUMNS)
        body.append(f"<tr>{cells}</tr>")
    hours = gpu_hours(jobs)
    gpu_rows = "".join(
        f"<tr><td>{html.escape(e)}</td><td>{h:.3f}</td></tr>" for e, h in hours.items()
    )
    advised = sum(1 for job in jobs if job.advice())
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>astroflow resources</title><style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: right; }}
td:first-child, td:nth-child(2), td:last-child {{ text-align: left; }}
</style></head><body>
<h1>Requested and used resources</h1>
<p>{len(jobs)} benchmarked jobs; {advised} with advice. Requests (threads, mem_mb, runtime in
minutes, GPUs) are what each job was given, from the first line of its log; use (wall and CPU
seconds, peak resident memory) is from its benchmark file. cores_used is CPU time over wall
time; the ratios are request over use. The same table is in results/resources.tsv.</p>
<table><tr>{head}</tr>
{"".join(body)}
</table>
<h2>GPU hours per experiment</h2>
<table><tr><th>experiment</th><th>GPU hours</th></tr>{gpu_rows}</table>
</body></html>
"""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page)


def _experiment(job: str) -> str | None:
    for item in job.split():
        key, _, value = item.partition("=")
        if key == "experiment":
            return value
    return None


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _tsv(value: Any) -> Any:
    return "NA" if value is None else value
