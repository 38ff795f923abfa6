"""The epoch plan: which maps, in which order and with which augmentation, on which rank.

Shuffling and augmentation are a pure function of (seed, epoch): nothing depends on worker
processes, worker seeds or how many epochs this process has already run, so a run resumed in
the middle of an epoch sees exactly the batches an uninterrupted run would have seen. Every
global batch is the same set of maps whatever the number of ranks; rank ``r`` of ``W`` takes
the ``r``-th contiguous slice of each global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from astroflow.engine.rng import derive_seed
from astroflow.maps.dataset import D4_ORDER

_PLAN_STREAM = 0x5A3F
"""Mixed into the plan's seed so it never coincides with the seed of another generator."""


class EpochPlan:
    """Global batches of one training set: ``steps_per_epoch`` batches of ``batch_size`` maps.

    The global batch is ``min(batch_size, n_items)`` so that a set smaller than one batch still
    trains (one batch per epoch); the maps left over by the last full batch are dropped, since
    BatchNorm statistics of a handful of maps are noise. The batch must split evenly across
    ``world_size`` ranks.
    """

    def __init__(
        self, n_items: int, batch_size: int, seed: int, world_size: int = 1, augment: bool = True
    ) -> None:
        if n_items < 1:
            raise ValueError("the training set is empty")
        self.n_items = n_items
        self.batch_size = min(batch_size, n_items)
        self.seed = seed
        self.world_size = world_size
        self.augment = augment
        if self.batch_size % world_size:
            raise ValueError(
                f"the global batch of {self.batch_size} maps does not split evenly across "
                f"{world_size} processes; choose a batch_size that is a multiple of {world_size}"
            )
        self.rank_batch_size = self.batch_size // world_size
        self.steps_per_epoch = n_items // self.batch_size

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (S, B) and D4 elements (S, B) of the global batches of ``epoch``."""
        rng = np.random.default_rng(derive_seed(self.seed, epoch, _PLAN_STREAM))
        used = self.steps_per_epoch * self.batch_size
        order = rng.permutation(self.n_items)[:used]
        elements = rng.integers(0, D4_ORDER, size=used) if self.augment else np.zeros(used, int)
        shape = (self.steps_per_epoch, self.batch_size)
        return order.reshape(shape), elements.reshape(shape)

    def loader_seed(self) -> int:
        """Seed of the DataLoader's own generator (worker seeds), kept apart from the plan."""
        return derive_seed(self.seed, _PLAN_STREAM)


class PlanSampler(Sampler):
    """This rank's items of one epoch of an :class:`EpochPlan`, from a given step on.

    Items are ``(index, d4_element)`` pairs when the plan augments (the dataset applies the
    element) and plain indices otherwise. Call :meth:`set_epoch` before each epoch; the
    DataLoader draws the items in the main process, so this works with persistent workers.
    """

    def __init__(self, plan: EpochPlan, rank: int = 0) -> None:
        self.plan = plan
        self.rank = rank
        self._epoch = 0
        self._start_step = 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Serve ``epoch`` from global batch ``start_step`` on (a resumed, half-done epoch)."""
        if not 0 <= start_step <= self.plan.steps_per_epoch:
            raise ValueError(
                f"start step {start_step} outside the epoch's {self.plan.steps_per_epoch} steps"
            )
        self._epoch, self._start_step = epoch, start_step

    def __len__(self) -> int:
        return (self.plan.steps_per_epoch - self._start_step) * self.plan.rank_batch_size

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        indices, elements = self.plan.epoch(self._epoch)
        b = self.plan.rank_batch_size
        cols = slice(self.rank * b, (self.rank + 1) * b)
        mine = indices[self._start_step :, cols].ravel().tolist()
        if not self.plan.augment:
            return iter(mine)
        return iter(zip(mine, elements[self._start_step :, cols].ravel().tolist(), strict=True))
