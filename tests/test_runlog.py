"""Step logs: context line first, tracebacks of failures land in the file, handlers removed."""

import logging

import pytest

from astroflow.runlog import job_context, log_to_file


def test_log_records_job_context_and_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_PARTITION", "gpu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    path = tmp_path / "logs" / "step.log"
    with log_to_file(path) as log:
        log.info("shard written")
    text = path.read_text()
    first = text.splitlines()[0]
    assert "SLURM_JOB_PARTITION=gpu" in first and "CUDA_VISIBLE_DEVICES=0,1" in first
    assert "shard written" in text
    before = len(logging.getLogger().handlers)
    logging.getLogger("astroflow").info("after the step")
    assert "after the step" not in path.read_text()
    assert len(logging.getLogger().handlers) == before


def test_failure_traceback_is_in_the_log(tmp_path):
    path = tmp_path / "step.log"
    with pytest.raises(ValueError, match="bad shard"), log_to_file(path):
        raise ValueError("bad shard 007.h5")
    text = path.read_text()
    assert "step failed" in text and "Traceback" in text and "bad shard 007.h5" in text


def test_job_context_without_scheduler(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "PBS_JOBID", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    assert job_context().startswith("host=")
    assert "SLURM" not in job_context()
