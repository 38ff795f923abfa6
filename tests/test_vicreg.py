"""VICReg: the loss on cases with known terms, the pair sampler, the collapse check."""

import numpy as np
import pytest
import torch
from shard_factory import write_splits

from astroflow.families.vicreg.collapse import EmbeddingCollapse, check_collapse
from astroflow.families.vicreg.pairs import PairDataset, view
from astroflow.families.vicreg.training import warmup_cosine
from astroflow.maps.dataset import ShardDataset
from astroflow.models.vicreg import VARIANCE_EPS, VICRegNet, vicreg_terms

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = {
    "fields": ["Mgas"],
    "params": ["Omega_m"],
    "pairs": "simulation",
    "invariance": 25.0,
    "variance": 25.0,
    "covariance": 1.0,
    "collapse_threshold": 0.9,
}


def test_identical_views_have_no_invariance_term():
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    invariance, variance, covariance = vicreg_terms(z, z.clone())
    assert float(invariance) == 0.0
    assert float(variance) >= 0.0 and float(covariance) > 0.0


def test_a_constant_output_puts_the_variance_term_at_its_maximum():
    z = torch.full((32, 8), 3.0)
    _, variance, covariance = vicreg_terms(z, z)
    assert float(variance) == pytest.approx(1.0 - np.sqrt(VARIANCE_EPS), rel=1e-6)
    assert float(covariance) == 0.0


def test_decorrelated_dimensions_have_no_covariance_term():
    # Columns of a Hadamard matrix but the constant one: zero mean, orthogonal, std > 1.
    h = torch.tensor([[1.0]])
    for _ in range(4):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    z = 2.0 * h[:, 1:]
    invariance, variance, covariance = vicreg_terms(z, z)
    assert float(covariance) == pytest.approx(0.0, abs=1e-6)
    assert float(variance) == 0.0  # every std is above 1
    # Two copies of one column are perfectly correlated: the term is positive.
    _, _, correlated = vicreg_terms(z[:, [0, 0]], z[:, [0, 0]])
    assert float(correlated) > 1.0


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("vicreg_shards")
    return write_splits(root, {"train": 6, "val": 2}, maps_per_sim=4, map_size=16)


def test_simulation_pairs_are_two_different_maps_of_one_simulation(shards):
    pairs = PairDataset(shards["train"], ["Mgas", "HI"], ["Omega_m"], "simulation")
    maps = ShardDataset(shards["train"], ["Mgas", "HI"], ["Omega_m"])
    for index in range(len(pairs)):
        for draw in (1, 2, 99):
            i, j, e1, e2, s1, s2 = pairs.pair(index, draw)
            assert i == index and j != i
            assert maps.sim_ids[i] == maps.sim_ids[j]
    batch = pairs[[(3, 5), (7, 11)]]
    assert batch.x.shape == (2, 2, 2, 16, 16)
    i, j, e1, e2, s1, s2 = pairs.pair(3, 5)
    x = maps[[i, j]].x
    torch.testing.assert_close(batch.x[0, 0], view(x[0], e1, s1))
    torch.testing.assert_close(batch.x[0, 1], view(x[1], e2, s2))
    assert int(batch.sim_id[0]) == int(maps.sim_ids[3])


def test_simulation_pairs_vary_with_the_draw_and_repeat_with_the_key(shards):
    pairs = PairDataset(shards["train"], ["Mgas"], ["Omega_m"], "simulation")
    drawn = {pairs.pair(0, draw) for draw in range(40)}
    assert len({d[1] for d in drawn}) == 3  # every other map of the simulation is drawn
    assert len({d[2:4] for d in drawn}) > 10  # and their transforms vary
    assert torch.equal(pairs[[(0, 7)]].x, pairs[[(0, 7)]].x)
    assert torch.equal(pairs[[0, 1]].x, pairs[[0, 1]].x)  # validation: one fixed draw


def test_field_pairs_stay_aligned_under_the_joint_transform(shards):
    pairs = PairDataset(shards["train"], ["Mgas", "HI"], ["Omega_m"], "fields")
    maps = ShardDataset(shards["train"], ["Mgas", "HI"], ["Omega_m"])
    for key in [(0, 1), (5, 2), (9, 123)]:
        i, j, e1, e2, s1, s2 = pairs.pair(*key)
        assert (i, e1, s1) == (j, e2, s2)
        batch = pairs[[key]]
        assert batch.x.shape == (1, 2, 1, 16, 16)
        # The views are the two fields of one transformed map: pixel by pixel aligned.
        both = view(maps[[i]].x[0], e1, s1)
        torch.testing.assert_close(batch.x[0, 0, 0], both[0])
        torch.testing.assert_close(batch.x[0, 1, 0], both[1])


def test_field_pairs_need_two_fields(shards):
    with pytest.raises(ValueError, match="exactly two fields"):
        PairDataset(shards["train"], ["Mgas"], ["Omega_m"], "fields")


def test_the_collapse_check_stops_constant_and_copied_outputs():
    rng = np.random.default_rng(0)
    healthy = rng.standard_normal((200, 32))
    check_collapse(healthy, 0.9)
    with pytest.raises(EmbeddingCollapse, match="variance term at 100%.*restart: true"):
        check_collapse(np.ones((200, 32)), 0.9)
    copies = np.repeat(rng.standard_normal((200, 1)) * 5, 32, axis=1)
    with pytest.raises(EmbeddingCollapse, match="correlation between output dimensions 1.00"):
        check_collapse(copies, 0.9)


def test_validation_stops_a_collapsed_network(shards):
    from astroflow.engine.distributed import World
    from astroflow.engine.family import Parts
    from astroflow.families.vicreg.training import VICRegTraining

    family = VICRegTraining()
    _, val = family.datasets(SETTINGS, shards["train"], shards["val"])
    model = VICRegNet(1, 16, width=2, embedding_dim=8, expander_dim=16)
    with torch.no_grad():
        model.expander[-1].weight.zero_()  # every map maps to the bias: a collapse
    parts = Parts({"model": model}, {"model": model}, {}, {}, {})
    loader = [val[[0, 1, 2, 3]], val[[4, 5, 6, 7]]]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(EmbeddingCollapse):
        family.validate(parts, loader, val, World(0, 1, 0, torch.device("cpu")))
    for name, tensor in model.state_dict().items():  # BatchNorm statistics left untouched
        assert torch.equal(tensor, before[name]), name


def test_validation_of_a_fresh_network_sees_no_collapse(shards):
    """At initialization the running statistics lag far behind the batches; the check reads
    outputs normalized by batch statistics, as the loss does, and lets a fresh network pass."""
    from astroflow.engine.distributed import World
    from astroflow.engine.family import Parts
    from astroflow.families.vicreg.training import VICRegTraining

    family = VICRegTraining()
    _, val = family.datasets(SETTINGS, shards["train"], shards["val"])
    torch.manual_seed(0)
    model = VICRegNet(1, 16, width=2, embedding_dim=8, expander_dim=16)
    parts = Parts({"model": model}, {"model": model}, {}, {}, {})
    validation = family.validate(
        parts, [val[list(range(len(val)))]], val, World(0, 1, 0, torch.device("cpu"))
    )
    assert np.isfinite(validation.loss)


def test_snapshots_copy_the_encoder_of_their_epoch_only():
    model = VICRegNet(1, 16, width=2, embedding_dim=8, expander_dim=16, snapshot_epochs=[2])
    model.take_snapshot(1)
    assert not model.snapshot_taken.any()
    model.take_snapshot(2)
    assert model.snapshot_taken.tolist() == [True]
    for a, b in zip(model.snapshots[0].parameters(), model.encoder.parameters(), strict=True):
        assert torch.equal(a, b) and not a.requires_grad


def test_the_schedule_warms_up_then_decays_to_zero():
    factors = [warmup_cosine(s, 10, 100) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == 1.0
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.0)
