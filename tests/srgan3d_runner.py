"""A tiny srgan3d training for the kill-and-resume test: run as a script it trains on the
shards named in its JSON argument and, if asked, SIGKILLs itself right after a given step."""

from __future__ import annotations

import json
import os
import signal
import sys

import torch

from astroflow.engine import resume
from astroflow.engine.loop import fit
from astroflow.engine.options import RunOptions
from astroflow.families import get_family

SETTINGS = {
    "model": "srgan3d",
    "epochs": 3,
    "batch_size": 2,
    "lr": 0.001,
    "weight_decay": 0.0,
    "seed": 11,
    "crop": 8,
    "crops_per_volume": 2,
    "width": 8,
    "critic_width": 4,
    "critic_steps": 2,
    "r1_gamma": 1.0,
    "adversarial_weight": 1.0,
    "supervised_weight": 10.0,
    "supervised": "coarse",
    "spectral_weight": 1.0,
    "spectral_k_min": 1.0,
    "spectral_skip": True,
    "keep_resolved": True,
    "warmup_steps": 3,
    "ema_decay": 0.9,
    "checkpointing": False,
    "tile": 8,
}


def train(job: dict) -> dict:
    out = job["out"]
    return fit(
        get_family("srgan3d").training(),
        SETTINGS,
        job["train"],
        job["val"],
        out + "/model.pt",
        out + "/log.csv",
        out + "/tb",
        RunOptions(**job["options"]),
    )


if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    original = resume.Checkpointer.after_step

    def after_step(self, state):
        original(self, state)
        if state.step == job["at"]:
            os.kill(os.getpid(), signal.SIGKILL)

    resume.Checkpointer.after_step = after_step
    train(job)
