"""The resources page: requests from the logs, use from the benchmark files, and the advice."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from astroflow.resources import (
    JobUsage,
    collect_usage,
    gpu_hours,
    read_benchmark,
    read_request,
    request_line,
    write_tsv,
)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_job(logs: Path, relative: str, request: str | None, rows: list[str]) -> None:
    """A job's log (with its request line, if any) and its benchmark file."""
    log = logs / f"{relative}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    lines = ["2026-01-01 INFO astroflow: job context: host=n1"]
    if request is not None:
        lines.append(f"2026-01-01 INFO astroflow: {request}")
    log.write_text("\n".join([*lines, "2026-01-01 INFO astroflow: done"]) + "\n")
    benchmark = logs / "benchmarks" / f"{relative}.tsv"
    benchmark.parent.mkdir(parents=True, exist_ok=True)
    benchmark.write_text(HEADER + "".join(row + "\n" for row in rows))


def usage(**changes) -> JobUsage:
    values = dict(
        rule="train",
        job="experiment=a",
        threads=2,
        mem_mb=4000.0,
        runtime_min=60.0,
        gpus=1,
        wall_s=1800.0,
        cpu_s=3000.0,
        max_rss_mb=3000.0,
    )
    return JobUsage(**{**values, **changes})


def test_request_line_round_trips_through_a_log(tmp_path):
    line = request_line(
        "train", {"experiment": "a"}, 4, {"mem_mb": 8000, "runtime": 120, "tmpdir": "/tmp"}
    )
    log = tmp_path / "train.log"
    log.write_text(f"2026 INFO astroflow: job context: host=x\n2026 INFO astroflow: {line}\n")
    assert read_request(log) == {
        "rule": "train",
        "wildcards": {"experiment": "a"},
        "threads": 4,
        "mem_mb": 8000,
        "runtime": 120,
    }
    assert read_request(tmp_path / "missing.log") is None


def test_benchmark_repeats_are_averaged_and_na_is_unknown(tmp_path):
    path = tmp_path / "b.tsv"
    path.write_text(
        HEADER
        + "10.0\t0:00:10\t100.0\t1\t1\t1\t0\t0\t50\t8.0\n"
        + "20.0\t0:00:20\t300.0\t1\t1\t1\t0\t0\t50\t12.0\n"
    )
    assert read_benchmark(path) == {"wall_s": 15.0, "cpu_s": 10.0, "max_rss_mb": 200.0}
    path.write_text(HEADER + "5.0\t0:00:05\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n")
    assert read_benchmark(path) == {"wall_s": 5.0, "cpu_s": None, "max_rss_mb": None}
    path.write_text(HEADER)
    with pytest.raises(ValueError, match="no measurement row"):
        read_benchmark(path)


def test_advice_flags_over_requests_and_near_limits_only():
    assert usage().advice() == ""  # 1.3x memory, 2x time, 0.8 of the threads busy
    over = usage(mem_mb=40000.0, runtime_min=600.0, threads=16)
    advice = over.advice()
    assert "mem_mb 40000 is 13x the peak 3000 MB: 6000 would do" in advice
    assert "runtime 600 min is 20x the 30.0 min used: 60 would do" in advice
    assert "16 threads but 1.7 cores busy" in advice
    near = usage(mem_mb=3200.0, wall_s=3500.0, cpu_s=6000.0).advice()
    assert "within 10% of mem_mb 3200: raise it to 6000" in near
    assert "used 58.3 of 60 min: raise runtime" in near
    # A short default runtime is not worth a note, whatever the ratio.
    assert usage(runtime_min=10.0, wall_s=20.0, cpu_s=30.0).advice() == ""


def test_collect_usage_pairs_benchmarks_with_logs_and_sums_gpu_hours(tmp_path):
    logs = tmp_path / "logs"
    train = request_line("train", {"experiment": "a"}, 2, {"mem_mb": 4000, "runtime": 60, "gpu": 2})
    write_job(logs, "a/train", train, ["1800.0\t0:30:00\t1000.0\t1\t1\t1\t0\t0\t80\t2880.0"])
    infer = request_line("infer", {"experiment": "a"}, 1, {"mem_mb": 4000, "runtime": 60, "gpu": 1})
    write_job(logs, "a/infer", infer, ["360.0\t0:06:00\t500.0\t1\t1\t1\t0\t0\t80\t300.0"])
    shard = request_line("format_shards", {"split": "train", "shard": "000"}, 1, {})
    write_job(
        logs,
        "IllustrisTNG_LH/format_shards/train_000",
        shard,
        ["2.0\t0\t80\t1\t1\t1\t0\t0\t9\t1.5"],
    )
    write_job(logs, "old/tsne", None, ["3.0\t0\t90\t1\t1\t1\t0\t0\t9\t5.0"])

    jobs = collect_usage(logs)
    assert [(j.rule, j.job) for j in jobs] == [
        ("format_shards", "split=train shard=000"),
        ("infer", "experiment=a"),
        ("train", "experiment=a"),
        ("tsne", "old/tsne"),  # no request line: the rule is the file's name
    ]
    train_job = jobs[2]
    assert (train_job.threads, train_job.mem_mb, train_job.gpus) == (2, 4000, 2)
    assert train_job.cores_used == pytest.approx(1.6)
    assert train_job.mem_ratio == pytest.approx(4.0)
    assert jobs[3].threads is None and jobs[3].advice() == ""
    assert gpu_hours(jobs) == {"a": pytest.approx(2 * 0.5 + 0.1)}

    table = tmp_path / "resources.tsv"
    write_tsv(jobs, table)
    rows = list(csv.DictReader(table.open(), delimiter="\t"))
    assert [float(r["wall_s"]) for r in rows] == [2.0, 360.0, 1800.0, 3.0]
    assert rows[3]["threads"] == "NA"
