"""Kill-and-resume harness of the training tests: one training job, run in this process or in a
subprocess that sends itself a signal right after a chosen optimizer step, and the bitwise
comparison of two model files.

A job is plain JSON: ``settings`` (an experiment), ``options`` (``RunOptions.to_json()``),
``out`` (a directory for model.pt, log.csv and tb/), the ``train`` and ``val`` shard paths
and, for a test's own two-network toy, ``training`` as ``"module:Class"`` (importable from
tests/); without it the family named by ``settings["model"]`` trains. Run as a script with a
job as its argument, it trains that job and signals itself after step ``at``.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from astroflow.engine import resume
from astroflow.engine.loop import fit
from astroflow.engine.options import RunOptions
from astroflow.families import get_family

TESTS = Path(__file__).resolve().parent


def train(job: dict[str, Any]) -> dict[str, float]:
    """Train ``job`` to the end in this process; returns the run's summary."""
    if "training" in job:
        module, name = job["training"].split(":")
        training = getattr(importlib.import_module(module), name)()
    else:
        training = get_family(job["settings"]["model"]).training()
    out = Path(job["out"])
    return fit(
        training,
        job["settings"],
        job.get("train", []),
        job.get("val", []),
        out / "model.pt",
        out / "log.csv",
        out / "tb",
        RunOptions(**job["options"]),
    )


def attempt(
    job: dict[str, Any], at: int, sig: str = "SIGKILL", timeout: float = 300
) -> subprocess.CompletedProcess:
    """Train ``job`` in a subprocess that sends itself ``sig`` right after optimizer step
    ``at`` (-1: never, the run finishes)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, __file__, json.dumps({**job, "at": at, "signal": sig})],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_same_weights(expected: Path, actual: Path) -> tuple[dict, dict]:
    """The two model files hold the same tensors, bit for bit; returns both files' contents."""
    reference = torch.load(expected, weights_only=True)
    resumed = torch.load(actual, weights_only=True)
    assert set(resumed["state_dict"]) == set(reference["state_dict"])
    for name, tensor in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor), name
    return reference, resumed


def last_log_row(path: Path, columns: int) -> list[str]:
    """The first ``columns`` values of a log.csv's last row (timings left out)."""
    return path.read_text().splitlines()[-1].split(",")[:columns]


def stop_after(monkeypatch, step: int) -> None:
    """Make trainings in this process raise SIGUSR1 (a stop request) right after ``step``."""
    after_step = resume.Checkpointer.after_step

    def stopping_after_step(self, state):
        after_step(self, state)
        if state.step == step:
            signal.raise_signal(signal.SIGUSR1)

    monkeypatch.setattr(resume.Checkpointer, "after_step", stopping_after_step)


def _run_and_signal(job: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(1)
    after_step = resume.Checkpointer.after_step

    def signalling_after_step(self, state):
        after_step(self, state)
        if state.step == job["at"]:
            os.kill(os.getpid(), getattr(signal, job["signal"]))

    resume.Checkpointer.after_step = signalling_after_step
    train(job)


if __name__ == "__main__":
    _run_and_signal(json.loads(sys.argv[1]))
