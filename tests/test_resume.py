"""Resume: a run killed with SIGKILL mid-epoch, then stopped by SIGTERM, then finished ends
bitwise equal to an uninterrupted run (weights, log, TensorBoard); SIGTERM saves at the next
step and raises; a checkpoint of other settings is refused unless the run may restart."""

import csv
import json
import signal
import subprocess
import sys

import pytest
import torch
from shard_factory import write_splits
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from astroflow.engine import resume
from astroflow.engine.checkpoint import POINTER, CheckpointMismatch
from astroflow.engine.options import RunOptions
from astroflow.engine.resume import TrainingInterrupted
from astroflow.train import train_experiment

# 80 training maps in batches of 8: 10 steps per epoch, 50 in all. Dropout draws from the
# torch generator, so its state must survive the kill too.
SETTINGS = {
    "model": "cnn2d",
    "fields": ["Mgas"],
    "params": ["Omega_m", "sigma_8"],
    "epochs": 5,
    "batch_size": 8,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "hidden": 4,
    "dropout": 0.2,
    "seed": 11,
}
EVERY = 4  # checkpoint every 4 steps (and at each epoch end)

# A training process that signals itself right after optimizer step `at` (-1: never).
RUNNER = """
import json, logging, os, signal, sys
import torch
from astroflow.engine import resume
from astroflow.engine.options import RunOptions
from astroflow.train import train_experiment

job = json.loads(sys.argv[1])
logging.basicConfig(level=logging.INFO)
torch.set_num_threads(1)
original = resume.Checkpointer.after_step

def after_step(self, state):
    original(self, state)
    if state.step == job["at"]:
        os.kill(os.getpid(), getattr(signal, job["signal"]))

resume.Checkpointer.after_step = after_step
out = job["out"]
train_experiment(
    job["settings"], job["train"], job["val"], out + "/model.pt", out + "/log.csv",
    out + "/tb", RunOptions(**job["options"]),
)
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    return write_splits(root, {"train": 10, "val": 5}, maps_per_sim=8)


def options(checkpoints, **extra):
    return RunOptions(checkpoint_dir=checkpoints, checkpoint_every_steps=EVERY, **extra)


def run(shards, out, opts, **overrides):
    return train_experiment(
        {**SETTINGS, **overrides},
        shards["train"],
        shards["val"],
        out / "model.pt",
        out / "log.csv",
        out / "tb",
        opts,
    )


def attempt(shards, out, checkpoints, at, sig, num_workers=0):
    job = {
        "settings": SETTINGS,
        "train": [str(p) for p in shards["train"]],
        "val": [str(p) for p in shards["val"]],
        "out": str(out),
        "options": options(checkpoints, num_workers=num_workers).to_json(),
        "at": at,
        "signal": sig,
    }
    return subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(job)], capture_output=True, text=True, timeout=120
    )


def pointer(checkpoints):
    return (checkpoints / POINTER).read_text().strip()


def rows(path):
    with open(path, newline="") as stream:
        return [
            {k: v for k, v in row.items() if k not in ("samples_per_s", "elapsed_s")}
            for row in csv.DictReader(stream)
        ]


def test_killed_then_stopped_run_ends_bitwise_equal(shards, tmp_path):
    reference = tmp_path / "reference"
    run(shards, reference, options(tmp_path / "ref_ckpt"))
    out, checkpoints = tmp_path / "run", tmp_path / "ckpt"

    # SIGKILL after step 19 (epoch 2, batch 9): the newest checkpoint is the one of step 16.
    killed = attempt(shards, out, checkpoints, at=19, sig="SIGKILL")
    assert killed.returncode == -signal.SIGKILL
    assert pointer(checkpoints) == "step-000000016.pt"

    # SIGTERM after step 33 is seen at the next step boundary: checkpoint of step 34, exit 1.
    stopped = attempt(shards, out, checkpoints, at=33, sig="SIGTERM")
    assert stopped.returncode == 1
    assert "resuming from" in stopped.stderr and "step-000000016.pt" in stopped.stderr
    assert "TrainingInterrupted: stopped by SIGTERM after step 34" in stopped.stderr
    assert pointer(checkpoints) == "step-000000034.pt"

    # Snakemake deletes a failed job's outputs; the last attempt rebuilds them (with a loader
    # worker this time: the epoch plan does not depend on who loads the maps).
    for name in ("log.csv", "model.pt"):
        (out / name).unlink(missing_ok=True)
    finished = attempt(shards, out, checkpoints, at=-1, sig="SIGTERM", num_workers=1)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert not checkpoints.exists()  # removed once the model is written

    expected = torch.load(reference / "model.pt", weights_only=True)
    actual = torch.load(out / "model.pt", weights_only=True)
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][name], tensor), name
    assert actual["best_epoch"] == expected["best_epoch"]
    assert actual["run"]["resumed_at_steps"] == [16, 34]
    assert rows(out / "log.csv") == rows(reference / "log.csv")
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/val")] == [1, 2, 3, 4, 5]
    assert [e.step for e in events.Scalars("loss/train_step")] == [10, 20, 30, 40, 50]


def stop_at(monkeypatch, step):
    original = resume.Checkpointer.after_step

    def after_step(self, state):
        original(self, state)
        if state.step == step:
            signal.raise_signal(signal.SIGUSR1)

    monkeypatch.setattr(resume.Checkpointer, "after_step", after_step)


def test_a_stop_signal_saves_at_the_next_step_and_raises(shards, tmp_path, monkeypatch):
    stop_at(monkeypatch, 7)
    previous = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(TrainingInterrupted, match="SIGUSR1 after step 8"):
        run(shards, tmp_path / "out", options(tmp_path / "ckpt"))
    assert pointer(tmp_path / "ckpt") == "step-000000008.pt"
    assert signal.getsignal(signal.SIGUSR1) is previous
    assert not (tmp_path / "out" / "model.pt").exists()


def test_other_settings_are_refused_unless_the_run_may_restart(
    shards, tmp_path, monkeypatch, caplog
):
    stop_at(monkeypatch, 3)
    with pytest.raises(TrainingInterrupted):
        run(shards, tmp_path / "out", options(tmp_path / "ckpt"))
    monkeypatch.undo()
    with pytest.raises(CheckpointMismatch, match=r"settings\.epochs: 5 -> 2.*restart: true"):
        run(shards, tmp_path / "out", options(tmp_path / "ckpt"), epochs=2)
    summary = run(shards, tmp_path / "out", options(tmp_path / "ckpt", restart=True), epochs=2)
    assert "restart: discarding" in caplog.text
    assert summary["best_epoch"] >= 1 and not (tmp_path / "ckpt").exists()
    payload = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert payload["settings"]["epochs"] == 2 and payload["run"]["resumed_at_steps"] == []
