"""Maps from a trained generator, and the score that picks the saved epoch.

Latents come from a seeded CPU generator, so the same seed gives the same maps on any device
and in any process: validation compares epochs on fixed latents, and products are
reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from astroflow.evaluation.fields import compare_sets
from astroflow.maps.dataset import ShardDataset

BATCH = 64
"""Maps per generator call (memory stays small at any map size that trains on a CPU)."""


@torch.no_grad()
def generate(
    model: nn.Module,
    params: np.ndarray,
    n_per: int,
    seed: int,
    device: torch.device | str,
    mapped: bool = True,
) -> np.ndarray:
    """``n_per`` maps for every row of ``params`` (S, P) scaled to [0, 1]: (S * n_per, C, N, N)
    float32, row ``s``'s maps at ``s * n_per ...``; latents drawn from ``seed``. ``mapped``
    False: the network's maps before the generator's quantile map."""
    model.eval()
    conditions = np.repeat(np.asarray(params, dtype=np.float32), n_per, axis=0)
    source = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(conditions), BATCH):
        p = torch.from_numpy(conditions[start : start + BATCH])
        latents = [
            torch.randn(shape, generator=source).to(device) for shape in model.latent_shapes(len(p))
        ]
        out.append(model(latents, p.to(device), mapped).float().cpu().numpy())
    return np.concatenate(out)


def group_by_simulation(dataset: ShardDataset) -> list[np.ndarray]:
    """Indices of the maps of each simulation of ``dataset``, simulations in order of first
    appearance."""
    sims, first = np.unique(dataset.sim_ids, return_index=True)
    return [np.flatnonzero(dataset.sim_ids == sim) for sim in sims[np.argsort(first)]]


def validation_score(
    model: nn.Module,
    dataset: ShardDataset,
    groups: list[np.ndarray],
    seed: int,
    device: torch.device | str,
) -> tuple[float, np.ndarray]:
    """Mean over simulations of the summed emulator distances of generated from real maps,
    in standardized units: mean P(k) error + mean |delta r| + mean PDF W1 over fields and pairs.
    Also the mean P_gen/P_real curves (F, K)."""
    scores, ratios = [], []
    for group in groups:
        real = dataset[list(group)].x.numpy()
        fake = generate(model, dataset.targets[group[:1]], len(group), seed, device)
        out = compare_sets(fake, real, 1.0, np.ones(real.shape[1]))
        correlation = out["correlation"].mean() if len(out["correlation"]) else 0.0
        scores.append(out["spectrum"].mean() + out["pdf"].mean() + correlation)
        ratios.append(out["ratio"])
    return float(np.mean(scores)), np.mean(ratios, axis=0)
