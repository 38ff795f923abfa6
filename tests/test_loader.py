"""Loaders and launch decisions: whole batches in order, workers that survive the scheduler's
stop signal, worker and process counts from threads and GPUs."""

import logging
import os
import signal
import time

import numpy as np
import pytest
import torch
from shard_factory import write_splits
from torch.utils.data import Subset

from astroflow.engine.launch import _children, process_count
from astroflow.engine.loader import auto_workers, eval_loader, train_loader
from astroflow.engine.sampler import EpochPlan, PlanSampler
from astroflow.maps.dataset import Batch, ShardDataset

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    paths = write_splits(tmp_path_factory.mktemp("shards"), {"train": 3}, shards_per_split=2)
    return ShardDataset(paths["train"], ["HI", "Mgas"], ["sigma_8"])  # 24 maps


def test_eval_batches_come_in_order_with_a_partial_last_one(dataset):
    batches = list(eval_loader(dataset, 10, CPU))
    assert [len(b.x) for b in batches] == [10, 10, 4]
    assert isinstance(batches[0], Batch) and batches[0].x.shape == (10, 2, 16, 16)
    x = torch.cat([b.x for b in batches])
    for i in (0, 13, 23):
        assert torch.equal(x[i], dataset[i][0])
    np.testing.assert_array_equal(torch.cat([b.sim_id for b in batches]).numpy(), dataset.sim_ids)
    part = Subset(dataset, range(12, 24))  # a rank's block of the validation set
    assert torch.equal(torch.cat([b.x for b in eval_loader(part, 5, CPU)]), x[12:])


def test_streamed_and_in_memory_batches_agree(dataset):
    keys = [(5, 3), (17, 0), (2, 6), (5, 1)]
    streamed = ShardDataset(dataset.paths, ["HI", "Mgas"], ["sigma_8"], in_memory=False)
    for a, b in zip(dataset[keys], streamed[keys], strict=True):
        assert torch.equal(a, b)
    for row, key in enumerate(keys):
        assert torch.equal(dataset[keys].x[row], dataset[key][0])
    with pytest.raises(IndexError, match="out of range"):
        dataset[[0, 24]]


def test_loader_workers_survive_the_stop_signal(dataset):
    """SLURM signals every process of a job step; the workers must leave it to the trainer."""
    plan = EpochPlan(len(dataset), 4, seed=0)
    sampler = PlanSampler(plan)
    loader = train_loader(dataset, sampler, CPU, num_workers=2)
    seen = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for step, batch in enumerate(loader):
            if epoch == 0 and step == 1:
                workers = _children(os.getpid())
                assert len(workers) >= 2
                for pid in workers:
                    os.kill(pid, signal.SIGTERM)
                time.sleep(0.2)
            seen.append(batch.x)
    assert len(seen) == 2 * plan.steps_per_epoch


def test_worker_and_process_counts(monkeypatch, caplog):
    assert auto_workers(8, torch.device("cuda")) == 7
    assert auto_workers(1, torch.device("cuda")) == 1
    assert auto_workers(8, CPU) == 0
    assert process_count(0) == process_count(1) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert process_count(2) == 2  # CPU processes over gloo, as asked
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with caplog.at_level(logging.WARNING):
        assert process_count(4) == 1
    assert "4 GPUs requested but 1 visible" in caplog.text
