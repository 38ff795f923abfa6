"""DataLoaders for training and evaluation, and how many worker processes they get.

Shard files are opened lazily in each process (see :class:`astroflow.maps.dataset.ShardDataset`),
so workers never share an HDF5 handle, and a batch is read in one go (``dataset[keys]``).
Workers persist across epochs and ignore SIGTERM and SIGUSR1 (the main process decides when to
stop). Pinned memory is used with CUDA so that the copies to the GPU are asynchronous.
"""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, SequentialSampler

from astroflow.engine.sampler import PlanSampler
from astroflow.engine.signals import ignore_stop_signals

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
