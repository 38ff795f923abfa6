"""A moment network on a frozen embedding: posterior mean and standard deviation of every
parameter from the embedding alone, trained with the cnn2d loss.

It answers the downstream question of an embedding used as a summary statistic: how well,
and how honestly (the predicted sigma), can the parameters be inferred from it. The scores
are those of cnn2d's ``metrics.json``, so the two compare column by column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from astroflow.evaluation.regression import regression_metrics
from astroflow.maps.dataset import unscale, unscale_sigma
from astroflow.models.cnn2d import NEGATIVE_SLOPE, STD_FLOOR, moment_loss

HIDDEN = 128
STEPS = 3000
"""Optimizer steps, whatever the number of maps: the cost stays bounded at 10^5 maps."""
VALIDATE_EVERY = 100
BATCH = 128
LR = 1e-3


def _network(n_in: int, n_params: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_in, HIDDEN),
        nn.LeakyReLU(NEGATIVE_SLOPE),
        nn.Linear(HIDDEN, HIDDEN),
        nn.LeakyReLU(NEGATIVE_SLOPE),
        nn.Linear(HIDDEN, 2 * n_params),
    )


def _moments(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = net(x)
    p = out.shape[1] // 2
    return out[:, :p], F.softplus(out[:, p:]) + STD_FLOOR


def moment_probe(
    features: dict[str, np.ndarray],
    targets: dict[str, np.ndarray],
    names: Sequence[str],
    seed: int,
) -> dict[str, Any]:
    """Train on ``features["train"]`` (n, D) against min-max scaled ``targets["train"]``
    (n, P) for :data:`STEPS` steps of random batches, keep the weights of lowest loss on the
    ``val`` rows (checked every :data:`VALIDATE_EVERY` steps), and score the ``test`` rows in
    physical units (:func:`~astroflow.evaluation.regression.regression_metrics` by name).

    Features are standardized with the training rows' statistics.
    """
    torch.manual_seed(seed)
    mean, std = features["train"].mean(axis=0), features["train"].std(axis=0) + 1e-8
    x = {k: torch.from_numpy(((v - mean) / std).astype(np.float32)) for k, v in features.items()}
    y = {k: torch.from_numpy(v.astype(np.float32)) for k, v in targets.items()}
    net = _network(x["train"].shape[1], y["train"].shape[1])
    optimizer = torch.optim.Adam(net.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(seed)
    best, best_state = float("inf"), None
    for step in range(STEPS):
        net.train()
        rows = torch.randint(len(x["train"]), (min(BATCH, len(x["train"])),), generator=generator)
        loss = moment_loss(*_moments(net, x["train"][rows]), y["train"][rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (step + 1) % VALIDATE_EVERY == 0:
            net.eval()
            with torch.no_grad():
                val = float(moment_loss(*_moments(net, x["val"]), y["val"]))
            if val < best:
                best, best_state = val, {k: v.clone() for k, v in net.state_dict().items()}
    if best_state is None:
        raise FloatingPointError("the moment network's validation loss was never finite")
    net.load_state_dict(best_state)
    with torch.no_grad():
        mu, sigma = (t.numpy() for t in _moments(net, x["test"]))
    truth = unscale(targets["test"], names)
    return regression_metrics(unscale(mu, names), unscale_sigma(sigma, names), truth, names)
