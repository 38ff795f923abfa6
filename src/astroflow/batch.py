"""The one shape of a batch that every dataset hands the engine, whatever it holds."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """Inputs (B, ...), targets (B, ...) and the simulation (or core) id of each item (B,).

    A training dataset answers ``dataset[list_of_keys]`` with a Batch; keys are indices, or
    ``(index, transform)`` pairs when the dataset declares ``n_transforms > 1`` (the element of
    its symmetry group that the epoch plan drew for that item).
    """

    x: torch.Tensor
    y: torch.Tensor
    sim_id: torch.Tensor
