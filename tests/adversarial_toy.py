"""A two-network family for engine tests: a tiny GAN that learns a 2D Gaussian.

The generator maps a 2D Gaussian latent affinely to 2D points; the critic (with dropout, so
its random state matters for a bitwise resume) scores them with the hinge loss. The critic
steps every step, the generator every second step, each with its own optimizer and schedule,
and an EMA copy of the generator is what the model file holds. Validation compares the mean
and covariance of EMA samples with the validation points. Run as a module it is a torchrun
rank.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from astroflow.batch import Batch
from astroflow.engine.family import Parts, StepContext, TrainingFamily, Validation
from astroflow.engine.launch import rank_main
from astroflow.engine.loop import fit
from astroflow.engine.options import RunOptions

MEAN = np.array([2.0, -1.0])
SCALE = np.array([0.7, 1.2])
LATENT = 2

SETTINGS = {
    "model": "toy_gan",
    "epochs": 8,
    "batch_size": 16,
    "lr": 0.05,
    "weight_decay": 0.0,
    "seed": 5,
}


class Points(Dataset):
    """``n`` points of the target Gaussian, drawn from ``seed``; targets are unused zeros."""

    n_transforms = 1

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.x = (MEAN + SCALE * rng.standard_normal((n, 2))).astype(np.float32)
        self.targets = np.zeros((n, 1), np.float32)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, keys: list[int]) -> Batch:
        index = np.asarray(keys)
        return Batch(
            torch.from_numpy(self.x[index]),
            torch.from_numpy(self.targets[index]),
            torch.from_numpy(index.astype(np.int64)),
        )

    def preload(self) -> None:
        pass


def mlp(n_in: int, n_out: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, 32), nn.LeakyReLU(0.2), nn.Dropout(dropout), nn.Linear(32, n_out)
    )


class ToyGan(TrainingFamily):
    items = "points"
    loss_names = ("loss", "critic", "generator")

    def datasets(self, cfg, train_paths, val_paths):
        return Points(256, cfg["seed"]), Points(512, cfg["seed"] + 1)

    def arch(self, cfg, train_set):
        return {"latent": LATENT}

    def networks(self, arch):
        # An affine generator can match a Gaussian exactly; the critic is a small MLP.
        return {"generator": nn.Linear(arch["latent"], 2), "critic": mlp(2, 1, dropout=0.1)}

    def optimizers(self, cfg, networks, total_steps):
        out = {}
        for name, lr in (("generator", cfg["lr"]), ("critic", cfg["lr"])):
            optimizer = torch.optim.Adam(networks[name].parameters(), lr=lr, betas=(0.5, 0.9))
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total_steps)
            out[name] = (optimizer, schedule)
        return out

    def ema_decays(self, cfg: Mapping[str, Any]) -> dict[str, float]:
        return {"generator": 0.9}

    def step(self, parts: Parts, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, ...]:
        real = batch.x.to(ctx.device)
        with torch.no_grad():
            fake = parts.calls["generator"](torch.randn(len(real), LATENT, device=ctx.device))
        # One critic pass over real and fake together: DDP allows one forward per backward.
        scores = parts.calls["critic"](torch.cat([real, fake]))
        critic = F.relu(1 - scores[: len(real)]).mean() + F.relu(1 + scores[len(real) :]).mean()
        parts.update("critic", critic)
        generator = torch.zeros((), device=ctx.device)
        if ctx.step % 2 == 1:
            z = torch.randn(len(real), LATENT, device=ctx.device)
            generator = -parts.calls["critic"](parts.calls["generator"](z)).mean()
            parts.update("generator", generator)
            parts.ema["generator"].update(parts.networks["generator"])
        return critic.detach(), critic.detach(), generator.detach()

    def validate(self, parts, loader, dataset, world) -> Validation:
        seeded = torch.Generator().manual_seed(0)
        z = torch.randn(len(dataset), LATENT, generator=seeded)
        with torch.no_grad():
            samples = parts.ema["generator"].module(z.to(world.device)).cpu().double().numpy()
        real = dataset.x.astype(np.float64)
        distance = np.sum((samples.mean(0) - real.mean(0)) ** 2) + np.sum(
            (np.cov(samples.T) - np.cov(real.T)) ** 2
        )
        return Validation(float(distance))

    def product_network(self, parts: Parts) -> nn.Module:
        return parts.ema["generator"].module

    def model_meta(self, cfg, train_set):
        return {"fields": [], "params": []}

    def describe(self, cfg, train_set):
        return "2D Gaussian points from a 2D latent"


def run_request(request: dict[str, Any]) -> None:
    """A torchrun rank of the toy (see :func:`astroflow.engine.launch.run_ranks`)."""
    fit(
        ToyGan(),
        request["settings"],
        [],
        [],
        request["out"] + "/model.pt",
        request["out"] + "/log.csv",
        request["out"] + "/tb",
        RunOptions(**{**request["options"], "threads": request["threads"]}),
    )


if __name__ == "__main__":
    sys.exit(rank_main(run_request, sys.argv[1:]))
