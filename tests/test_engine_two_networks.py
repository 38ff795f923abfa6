"""The engine with a two-network family (a tiny GAN: generator, critic, two optimizers and
schedules, an EMA generator): it learns, a checkpoint holds every part, a SIGKILLed run
resumes bitwise, and two gloo processes under torchrun train it as well as one process."""

import os
import signal
from pathlib import Path

import pytest
import torch
from adversarial_toy import SETTINGS, ToyGan
from resume_harness import TESTS, assert_same_weights, attempt, last_log_row

from astroflow.engine.launch import run_ranks
from astroflow.engine.loop import fit
from astroflow.engine.options import RunOptions

EVERY = 4

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def train(out: Path, **options) -> dict:
    return fit(
        ToyGan(),
        SETTINGS,
        [],
        [],
        out / "model.pt",
        out / "log.csv",
        out / "tb",
        RunOptions(**options),
    )


def job(out: Path, checkpoints: Path) -> dict:
    return {
        "training": "adversarial_toy:ToyGan",
        "settings": SETTINGS,
        "out": str(out),
        "options": RunOptions(checkpoint_dir=checkpoints, checkpoint_every_steps=EVERY).to_json(),
    }


def learned(out: Path, best: float) -> bool:
    """The best validation distance is below a quarter of the first epoch's."""
    first_val = float((out / "log.csv").read_text().splitlines()[1].split(",")[3])
    return best < 0.25 * first_val


def test_two_networks_learn_and_the_model_file_holds_the_ema_generator(tmp_path):
    summary = train(tmp_path)
    assert learned(tmp_path, summary["best_val_loss"])
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(payload["state_dict"]) == {"weight", "bias"}  # the affine generator


def test_a_killed_two_network_run_resumes_bitwise(tmp_path):
    reference = tmp_path / "reference"
    train(reference, checkpoint_dir=tmp_path / "ref_ckpt", checkpoint_every_steps=EVERY)
    out, checkpoints = tmp_path / "run", tmp_path / "ckpt"

    killed = attempt(job(out, checkpoints), at=27)  # mid-epoch 2; newest checkpoint: step 24
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    saved = torch.load(checkpoints / "step-000000024.pt", weights_only=True)["parts"]
    assert set(saved["networks"]) == {"generator", "critic"}
    assert set(saved["optimizers"]) == set(saved["schedulers"]) == {"generator", "critic"}
    assert set(saved["scalers"]) == {"generator", "critic"} and set(saved["ema"]) == {"generator"}

    finished = attempt(job(out, checkpoints), at=-1)
    assert finished.returncode == 0, finished.stderr[-3000:]
    _, actual = assert_same_weights(reference / "model.pt", out / "model.pt")
    assert actual["run"]["resumed_at_steps"] == [24]
    assert last_log_row(out / "log.csv", 4) == last_log_row(reference / "log.csv", 4)


def test_two_gloo_processes_train_the_two_networks_as_well_as_one(tmp_path, monkeypatch):
    one = train(tmp_path / "one")
    monkeypatch.setenv("PYTHONPATH", str(TESTS), prepend=os.pathsep)
    out = tmp_path / "two"
    out.mkdir()
    request = {
        "settings": SETTINGS,
        "out": str(out),
        "options": RunOptions(checkpoint_dir=tmp_path / "ckpt").to_json(),
        "checkpoint_dir": str(tmp_path / "ckpt"),
        "log_path": str(out / "train.log"),
    }
    run_ranks("adversarial_toy", request, 2, threads=2, log_path=out / "train.log")
    payload = torch.load(out / "model.pt", weights_only=True)
    assert payload["run"]["world_size"] == 2 and payload["run"]["backend"] == "gloo"
    # Each rank draws its own latents, so the runs differ; both must learn the Gaussian.
    assert learned(tmp_path / "one", one["best_val_loss"])
    assert learned(out, payload["best_val_loss"])
