"""The epoch plan: a pure function of seed and epoch, the same global batches for any number
of ranks, resumable from any step, and augmentation carried to the dataset in the key."""

import numpy as np
import pytest
import torch
from shard_factory import write_shard

from astroflow.engine.sampler import EpochPlan, PlanSampler
from astroflow.maps.dataset import D4_ORDER, ShardDataset, dihedral


def items(plan, rank=0, epoch=0, start=0):
    sampler = PlanSampler(plan, rank)
    sampler.set_epoch(epoch, start)
    out = list(sampler)
    assert len(out) == len(sampler)
    return out


def test_epochs_are_permutations_that_depend_only_on_seed_and_epoch():
    plan = EpochPlan(103, 10, seed=5)
    assert plan.steps_per_epoch == 10  # 3 maps left over are dropped
    first = items(plan)
    assert len({i for i, _ in first}) == 100
    assert {e for _, e in first} == set(range(D4_ORDER))
    assert first == items(EpochPlan(103, 10, seed=5))  # a new process plans the same epoch
    assert first != items(plan, epoch=1)
    assert first != items(EpochPlan(103, 10, seed=6))


def test_ranks_share_out_each_global_batch():
    single = np.array(items(EpochPlan(64, 16, seed=1))).reshape(4, 16, 2)
    plan = EpochPlan(64, 16, seed=1, world_size=4)
    per_rank = [np.array(items(plan, rank=r)).reshape(4, 4, 2) for r in range(4)]
    for step in range(4):
        together = np.concatenate([part[step] for part in per_rank])
        np.testing.assert_array_equal(together, single[step])


def test_a_resumed_epoch_continues_with_the_same_items():
    plan = EpochPlan(40, 8, seed=3, world_size=2)
    for rank in (0, 1):
        full = items(plan, rank=rank, epoch=2)
        assert items(plan, rank=rank, epoch=2, start=3) == full[3 * 4 :]
    assert items(plan, epoch=2, start=plan.steps_per_epoch) == []
    with pytest.raises(ValueError, match="start step 6"):
        PlanSampler(plan).set_epoch(0, 6)


def test_small_sets_train_one_batch_and_batches_must_split_across_ranks():
    plan = EpochPlan(5, 32, seed=0)
    assert (plan.batch_size, plan.steps_per_epoch) == (5, 1)
    with pytest.raises(ValueError, match="multiple of 4"):
        EpochPlan(100, 30, seed=0, world_size=4)


def test_without_augmentation_the_sampler_yields_plain_indices():
    plan = EpochPlan(12, 4, seed=0, augment=False)
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
