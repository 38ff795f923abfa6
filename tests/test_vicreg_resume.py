"""vicreg through the engine: a SIGKILLed run resumes bitwise (encoder, expander, snapshots,
optimizer and the warm-up/cosine schedule), and a changed ``epochs`` is refused with the way
to restart."""

import signal

import pytest
from resume_harness import assert_same_weights, attempt, last_log_row, stop_after
from shard_factory import write_splits

from astroflow.engine.checkpoint import CheckpointMismatch
from astroflow.engine.options import RunOptions
from astroflow.engine.resume import TrainingInterrupted
from astroflow.train import train_experiment

# 24 training maps in batches of 8: 3 steps per epoch, 12 in all.
SETTINGS = {
    "model": "vicreg",
    "fields": ["Mgas", "HI"],
    "params": ["Omega_m", "sigma_8"],
    "pairs": "simulation",
    "width": 2,
    "embedding_dim": 8,
    "expander_dim": 16,
    "invariance": 25.0,
    "variance": 25.0,
    "covariance": 1.0,
    "warmup_epochs": 1,
    "collapse_threshold": 1.0,
    "snapshot_epochs": [2],
    "compare_with": None,
    "epochs": 4,
    "batch_size": 8,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "seed": 5,
}
EVERY = 2

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("vicreg_resume")
    return write_splits(root, {"train": 6, "val": 2}, maps_per_sim=4, map_size=16)


def options(checkpoints, **extra):
    return RunOptions(checkpoint_dir=checkpoints, checkpoint_every_steps=EVERY, **extra)


def run(shards, out, opts, **changes):
    return train_experiment(
        {**SETTINGS, **changes},
        shards["train"],
        shards["val"],
        out / "model.pt",
        out / "log.csv",
        out / "tb",
        opts,
    )


def job(shards, out, checkpoints):
    return {
        "settings": SETTINGS,
        "train": [str(p) for p in shards["train"]],
        "val": [str(p) for p in shards["val"]],
        "out": str(out),
        "options": options(checkpoints).to_json(),
    }


def test_a_killed_vicreg_run_resumes_bitwise(shards, tmp_path):
    reference = tmp_path / "reference"
    run(shards, reference, options(tmp_path / "ref_ckpt"))
    out, checkpoints = tmp_path / "run", tmp_path / "ckpt"
    killed = attempt(job(shards, out, checkpoints), at=7)  # epoch 3; newest checkpoint: step 6
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    finished = attempt(job(shards, out, checkpoints), at=-1)
    assert finished.returncode == 0, finished.stderr[-3000:]

    _, actual = assert_same_weights(reference / "model.pt", out / "model.pt")
    assert actual["run"]["resumed_at_steps"] == [6]
    assert any(k.startswith("snapshots.0.") for k in actual["state_dict"])
    assert last_log_row(out / "log.csv", 5) == last_log_row(reference / "log.csv", 5)


def test_a_changed_epochs_is_refused_with_the_way_to_restart(shards, tmp_path, monkeypatch):
    stop_after(monkeypatch, 4)
    with pytest.raises(TrainingInterrupted):
        run(shards, tmp_path / "out", options(tmp_path / "ckpt"))
    monkeypatch.undo()
    with pytest.raises(CheckpointMismatch, match=r"settings\.epochs: 4 -> 6.*restart: true"):
        run(shards, tmp_path / "out", options(tmp_path / "ckpt"), epochs=6)
