"""Batches: the epoch plan (a pure function of seed and epoch, the same global batches for any
number of ranks, resumable from any step, augmentation carried to the dataset in the key), and
the loaders and launch decisions (whole batches in order, workers that survive the scheduler's
stop signal, worker and process counts from threads and GPUs)."""

import logging
import os
import signal
import time

import numpy as np
import pytest
import torch
from shard_factory import write_shard, write_splits
from torch.utils.data import Subset

from astroflow.batch import Batch
from astroflow.engine.batches import EpochPlan, PlanSampler, auto_workers, eval_loader, train_loader
from astroflow.engine.launch import _children, process_count
from astroflow.maps.dataset import D4_ORDER, ShardDataset, dihedral

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


def items(plan, rank=0, epoch=0, start=0):
    sampler = PlanSampler(plan, rank)
    sampler.set_epoch(epoch, start)
    out = list(sampler)
    assert len(out) == len(sampler)
    return out


def test_epochs_are_permutations_that_depend_only_on_seed_and_epoch():
    plan = EpochPlan(103, 10, seed=5, n_transforms=D4_ORDER)
    assert plan.steps_per_epoch == 10  # 3 maps left over are dropped
    first = items(plan)
    assert len({i for i, _ in first}) == 100
    assert {e for _, e in first} == set(range(D4_ORDER))
    assert first == items(
        EpochPlan(103, 10, seed=5, n_transforms=D4_ORDER)
    )  # a new process plans the same epoch
    assert first != items(plan, epoch=1)
    assert first != items(EpochPlan(103, 10, seed=6, n_transforms=D4_ORDER))


def test_ranks_share_out_each_global_batch():
    single = np.array(items(EpochPlan(64, 16, seed=1, n_transforms=D4_ORDER))).reshape(4, 16, 2)
    plan = EpochPlan(64, 16, seed=1, world_size=4, n_transforms=D4_ORDER)
    per_rank = [np.array(items(plan, rank=r)).reshape(4, 4, 2) for r in range(4)]
    for step in range(4):
        together = np.concatenate([part[step] for part in per_rank])
        np.testing.assert_array_equal(together, single[step])


def test_a_resumed_epoch_continues_with_the_same_items():
    plan = EpochPlan(40, 8, seed=3, world_size=2, n_transforms=D4_ORDER)
    for rank in (0, 1):
        full = items(plan, rank=rank, epoch=2)
        assert items(plan, rank=rank, epoch=2, start=3) == full[3 * 4 :]
    assert items(plan, epoch=2, start=plan.steps_per_epoch) == []
    with pytest.raises(ValueError, match="start step 6"):
        PlanSampler(plan).set_epoch(0, 6)


def test_small_sets_train_one_batch_and_batches_must_split_across_ranks():
    plan = EpochPlan(5, 32, seed=0, n_transforms=D4_ORDER)
    assert (plan.batch_size, plan.steps_per_epoch) == (5, 1)
    with pytest.raises(ValueError, match="multiple of 4"):
        EpochPlan(100, 30, seed=0, world_size=4, n_transforms=D4_ORDER)


def test_without_augmentation_the_sampler_yields_plain_indices():
    plan = EpochPlan(12, 4, seed=0)
    assert sorted(items(plan)) == list(range(12))


def test_the_dataset_applies_the_planned_element(tmp_path):
    path = write_shard(tmp_path / "000.h5", n_sims=2)
    plain = ShardDataset([path], ["Mgas"], ["Omega_m"])
    for augment in (False, True):
        ds = ShardDataset([path], ["Mgas"], ["Omega_m"], augment=augment)
        for element in range(D4_ORDER):
            x, y, sim = ds[(5, element)]
            assert torch.equal(x, dihedral(plain[5][0], element))
            assert torch.equal(y, plain[5][1]) and sim == plain[5][2]
