"""Resume: a run killed with SIGKILL mid-epoch, then stopped by SIGTERM, then finished ends
bitwise equal to an uninterrupted run (weights, log, TensorBoard); SIGTERM saves at the next
step and raises; a checkpoint of other settings is refused unless the run may restart."""

import csv
import signal

import pytest
import torch
from resume_harness import assert_same_weights, attempt, stop_after
from shard_factory import write_splits
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

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


def job(shards, out, checkpoints, num_workers=0):
    return {
        "settings": SETTINGS,
        "train": [str(p) for p in shards["train"]],
        "val": [str(p) for p in shards["val"]],
        "out": str(out),
        "options": options(checkpoints, num_workers=num_workers).to_json(),
    }


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
    killed = attempt(job(shards, out, checkpoints), at=19)
    assert killed.returncode == -signal.SIGKILL
    assert pointer(checkpoints) == "step-000000016.pt"

    # SIGTERM after step 33 is seen at the next step boundary: checkpoint of step 34, exit 1.
    stopped = attempt(job(shards, out, checkpoints), at=33, sig="SIGTERM")
    assert stopped.returncode == 1
    assert "resuming from" in stopped.stderr and "step-000000016.pt" in stopped.stderr
    assert "TrainingInterrupted: stopped by SIGTERM after step 34" in stopped.stderr
    assert pointer(checkpoints) == "step-000000034.pt"

    # Snakemake deletes a failed job's outputs; the last attempt rebuilds them (with a loader
    # worker this time: the epoch plan does not depend on who loads the maps).
    for name in ("log.csv", "model.pt"):
        (out / name).unlink(missing_ok=True)
    finished = attempt(job(shards, out, checkpoints, num_workers=1), at=-1)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert not checkpoints.exists()  # removed once the model is written

    expected, actual = assert_same_weights(reference / "model.pt", out / "model.pt")
    assert actual["best_epoch"] == expected["best_epoch"]
    assert actual["run"]["resumed_at_steps"] == [16, 34]
    assert rows(out / "log.csv") == rows(reference / "log.csv")
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/val")] == [1, 2, 3, 4, 5]
    assert [e.step for e in events.Scalars("loss/train_step")] == [10, 20, 30, 40, 50]


def test_a_stop_signal_saves_at_the_next_step_and_raises(shards, tmp_path, monkeypatch):
    stop_after(monkeypatch, 7)
    previous = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(TrainingInterrupted, match="SIGUSR1 after step 8"):
        run(shards, tmp_path / "out", options(tmp_path / "ckpt"))
    assert pointer(tmp_path / "ckpt") == "step-000000008.pt"
    assert signal.getsignal(signal.SIGUSR1) is previous
    assert not (tmp_path / "out" / "model.pt").exists()


def test_other_settings_are_refused_unless_the_run_may_restart(
    shards, tmp_path, monkeypatch, caplog
):
    stop_after(monkeypatch, 3)
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
