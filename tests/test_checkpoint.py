"""Checkpoint files: atomic saves with a `last` pointer, a fallback when the newest is damaged,
weights-only loading, the fingerprint that refuses other settings, and the run options."""

import random
import re

import numpy as np
import pytest
import torch

from astroflow.engine import rng
from astroflow.engine.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    POINTER,
    CheckpointMismatch,
    CheckpointStore,
    check_resumable,
    fingerprint,
    fingerprint_hash,
)
from astroflow.engine.options import RUNTIME_KEYS, RunOptions

SETTINGS = {"model": "cnn2d", "epochs": 20, "batch_size": 32, "lr": 0.001, "seed": 1}


def payload(step, **extra):
    fp = fingerprint(SETTINGS, n_train_maps=100)
    return {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "fingerprint": fp,
        "fingerprint_hash": "x",
        "step": step,
        "weights": torch.full((3,), float(step)),
        **extra,
    }


def test_saves_replace_the_pointer_and_keep_two_files(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt")
    assert store.latest() is None
    for step in (10, 20, 30):
        store.save(payload(step))
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == [POINTER, "step-000000020.pt", "step-000000030.pt"]
    assert (tmp_path / "ckpt" / POINTER).read_text().strip() == "step-000000030.pt"
    path, loaded = store.latest()
    assert path.name == "step-000000030.pt" and torch.equal(
        loaded["weights"], torch.full((3,), 30.0)
    )


def test_a_damaged_newest_file_falls_back_to_the_previous(tmp_path, caplog):
    store = CheckpointStore(tmp_path)
    store.save(payload(1))
    newest = store.save(payload(2))
    newest.write_bytes(newest.read_bytes()[:100])  # truncated, e.g. a full disk
    path, loaded = store.latest()
    assert loaded["step"] == 1
    assert "unreadable" in caplog.text


def test_checkpoints_hold_only_weights_only_data(tmp_path):
    store = CheckpointStore(tmp_path)
    path = store.save(payload(5, rng=[rng.capture()], history=[{"epoch": 1, "loss": 0.5}]))
    loaded = torch.load(path, weights_only=True)
    rng.restore(loaded["rng"][0])  # Python, NumPy and torch states survive the round trip
    torch.save({"step": 6, "format_version": 1, "module": torch.nn.Linear(2, 2)}, path)
    assert store.latest() is None  # a pickled module is not loaded, not even as a fallback


def test_rng_restore_replays_every_generator():
    rng.seed_everything(3)
    state = rng.capture()
    first = (random.random(), np.random.random(), torch.rand(2))  # noqa: NPY002
    rng.restore(state)
    again = (random.random(), np.random.random(), torch.rand(2))  # noqa: NPY002
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_clear_removes_files_and_the_empty_directory(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt")
    store.save(payload(1))
    store.clear()
    assert not (tmp_path / "ckpt").exists()


def test_other_settings_are_refused_with_the_changes_and_the_way_out(tmp_path):
    saved = payload(3)
    saved["fingerprint_hash"] = fingerprint_hash(saved["fingerprint"])
    same = fingerprint({**SETTINGS, "threads": 8, "restart": True}, n_train_maps=100)
    check_resumable(tmp_path / "c.pt", saved, same, tmp_path)  # runtime keys do not count
    other = fingerprint({**SETTINGS, "epochs": 30}, n_train_maps=120)
    with pytest.raises(CheckpointMismatch) as err:
        check_resumable(tmp_path / "c.pt", saved, other, tmp_path)
    message = str(err.value)
    assert "settings.epochs: 20 -> 30" in message and "n_train_maps: 100 -> 120" in message
    assert "restart: true" in message and re.search(re.escape(str(tmp_path)), message)


def test_run_options_from_an_experiment_entry():
    entry = {"epochs": 3, "gpus": 2, "restart": True, "checkpoint_every_steps": 50, "lr": 1e-3}
    options = RunOptions.from_experiment(entry, checkpoint_dir="ckpt/x", threads=4)
    assert options.restart and options.checkpoint_every_steps == 50 and options.threads == 4
    assert str(options.checkpoint_dir) == "ckpt/x"
    assert RunOptions(**options.to_json()) == options
    assert {"gpus", "threads", "restart", "precision"} <= set(RUNTIME_KEYS)
    with pytest.raises(ValueError, match="precision"):
        RunOptions(precision="half")
    with pytest.raises(ValueError, match="checkpoint_every_steps"):
        RunOptions(checkpoint_every_steps=0)
