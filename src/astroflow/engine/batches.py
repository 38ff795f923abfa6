"""Batches for training and evaluation: the epoch plan, its sampler, and the DataLoaders.

Shuffling and augmentation are a pure function of (seed, epoch): nothing depends on worker
processes, worker seeds or how many epochs this process has already run, so a run resumed in
the middle of an epoch sees exactly the batches an uninterrupted run would have seen. Every
global batch is the same set of items whatever the number of ranks; rank ``r`` of ``W`` takes
the ``r``-th contiguous slice of each global batch. Which augmentation an item gets is an
element of its dataset's symmetry group (``dataset.n_transforms`` of them: the 8 of D4 for
maps and cube sky planes), drawn by the plan and applied by the dataset.

Datasets open their files lazily in each process, so workers never share an HDF5 handle, and
a batch is read in one go (``dataset[keys]``). Workers persist across epochs and ignore
SIGTERM and SIGUSR1 (the main process decides when to stop). Pinned memory is used with CUDA
so that the copies to the GPU are asynchronous.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from astroflow.engine.resume import ignore_stop_signals
from astroflow.engine.rng import derive_seed

_PLAN_STREAM = 0x5A3F
"""Mixed into the plan's seed so it never coincides with the seed of another generator."""


class EpochPlan:
    """Global batches of one training set: ``steps_per_epoch`` batches of ``batch_size`` items.

    The global batch is ``min(batch_size, n_items)`` so that a set smaller than one batch still
    trains (one batch per epoch); the items left over by the last full batch are dropped, since
    BatchNorm statistics of a handful of items are noise. The batch must split evenly across
    ``world_size`` ranks. ``n_transforms`` is the order of the dataset's symmetry group: each
    item gets a uniformly drawn element of it (1: no augmentation).
    """

    def __init__(
        self, n_items: int, batch_size: int, seed: int, world_size: int = 1, n_transforms: int = 1
    ) -> None:
        if n_items < 1:
            raise ValueError("the training set is empty")
        self.n_items = n_items
        self.batch_size = min(batch_size, n_items)
        self.seed = seed
        self.world_size = world_size
        if n_transforms < 1:
            raise ValueError(f"n_transforms must be >= 1, got {n_transforms}")
        self.n_transforms = n_transforms
        if self.batch_size % world_size:
            raise ValueError(
                f"the global batch of {self.batch_size} items does not split evenly across "
                f"{world_size} processes; choose a batch_size that is a multiple of {world_size}"
            )
        self.rank_batch_size = self.batch_size // world_size
        self.steps_per_epoch = n_items // self.batch_size

    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices (S, B) and transform elements (S, B) of the global batches of ``epoch``."""
        rng = np.random.default_rng(derive_seed(self.seed, epoch, _PLAN_STREAM))
        used = self.steps_per_epoch * self.batch_size
        order = rng.permutation(self.n_items)[:used]
        elements = rng.integers(0, self.n_transforms, size=used)
        shape = (self.steps_per_epoch, self.batch_size)
        return order.reshape(shape), elements.reshape(shape)

    def loader_seed(self) -> int:
        """Seed of the DataLoader's own generator (worker seeds), kept apart from the plan."""
        return derive_seed(self.seed, _PLAN_STREAM)


class PlanSampler(Sampler):
    """This rank's items of one epoch of an :class:`EpochPlan`, from a given step on.

    Items are ``(index, transform)`` pairs when the plan augments (the dataset applies the
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
        if self.plan.n_transforms == 1:
            return iter(mine)
        return iter(zip(mine, elements[self._start_step :, cols].ravel().tolist(), strict=True))


PREFETCH_BATCHES = 4
"""Batches each worker keeps ready: enough to absorb a slow read without holding much memory."""


def auto_workers(threads: int | None, device: torch.device) -> int:
    """Loader processes for a rank that may use ``threads`` CPU threads.

    On a GPU the main process only feeds the device, so every other thread loads data. On the
    CPU the network needs the threads itself, and the main process alone loads maps 30-100
    times faster than a cnn2d step consumes them, from memory or streamed from shards
    (benchmarks/loader_throughput.py); a worker would only add copies between processes.
    """
    threads = threads or torch.get_num_threads()
    return max(1, threads - 1) if device.type == "cuda" else 0


def train_loader(
    dataset: Dataset, sampler: PlanSampler, device: torch.device, num_workers: int
) -> DataLoader:
    """Batches of this rank's slice of each global batch of the sampler's plan."""
    batches = BatchSampler(sampler, sampler.plan.rank_batch_size, drop_last=False)
    return _loader(dataset, batches, device, num_workers, sampler.plan.loader_seed())


def eval_loader(
    dataset: Dataset, batch_size: int, device: torch.device, num_workers: int = 0
) -> DataLoader:
    """Batches of ``dataset`` in order, the last one partial (inference, validation)."""
    batches = BatchSampler(SequentialSampler(dataset), batch_size, drop_last=False)
    return _loader(dataset, batches, device, num_workers, 0)


def _loader(
    dataset: Dataset, batches: Sampler, device: torch.device, num_workers: int, seed: int
) -> DataLoader:
    """A DataLoader that asks the dataset for whole batches: ``dataset[list_of_keys]``.

    ``batch_size=None`` turns off the loader's own batching, so a batch is read in one go
    instead of item by item and then stacked.
    """
    # The loader's own generator keeps it from drawing worker seeds from the global torch
    # generator, which dropout uses.
    options = {
        "batch_size": None,
        "sampler": batches,
        "num_workers": num_workers,
        "pin_memory": device.type == "cuda",
        "generator": torch.Generator().manual_seed(seed),
    }
    if num_workers > 0:
        options.update(
            persistent_workers=True,
            prefetch_factor=PREFETCH_BATCHES,
            worker_init_fn=ignore_stop_signals,
        )
    return DataLoader(dataset, **options)
