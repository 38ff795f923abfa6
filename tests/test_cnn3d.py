"""ProfileCNN3d: shapes, receptive field measured by gradients, translation equivariance, the
loss, and a tiny training run on synthetic cores that has to beat the flat-profile baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cube_factory import tiny_config

from astroflow.cubes.baseline import flat_profile_baseline, profile_metrics
from astroflow.cubes.scaling import fit_scaling, scale_cubes, scale_profiles, unscale_profiles
from astroflow.cubes.shards import read_cube_shard, write_cube_shard
from astroflow.models.cnn3d import ProfileCNN3d, profile_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model(radius=2, n_channels=12, n_bins=4, **kwargs):
    torch.manual_seed(0)
    net = ProfileCNN3d(n_channels, n_bins, hidden=16, stem=4, radius=radius, **kwargs)
    # Non-trivial BatchNorm statistics, so eval mode is not an identity normalisation.
    with torch.no_grad():
        net(torch.randn(8, n_channels, 12, 12) * 2 + 0.5)
    return net.eval()


def test_output_shapes_for_both_input_layouts_and_any_map_size():
    net = model()
    x = torch.randn(3, 12, 10, 14)
    out = net(x)
    assert out.shape == (3, 8, 10, 14)
    torch.testing.assert_close(net(x[:, None]), out)
    assert net.features(x).shape == (3, 16)
    with pytest.raises(ValueError, match=r"expected cubes \(B, 12, ny, nx\)"):
        net(torch.randn(2, 10, 8, 8))


@pytest.mark.parametrize("radius", [0, 1, 2, 3])
def test_receptive_field_measured_by_gradient(radius):
    """The output of one column depends on exactly the (2 radius + 1)^2 columns around it,
    in every velocity channel."""
    net = model(radius)
    x = torch.randn(1, 12, 15, 15, requires_grad=True)
    net(x)[0, :, 7, 7].sum().backward()
    reach = x.grad[0].abs().sum(0) > 0  # (ny, nx): columns that influence column (7, 7)
    rows, cols = np.nonzero(reach.numpy())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (
        7 - radius,
        7 + radius,
        7 - radius,
        7 + radius,
    )
    assert reach.sum() == (2 * radius + 1) ** 2
    assert (x.grad[0, :, 7, 7] != 0).all()  # the whole spectrum of the column counts


def test_translation_equivariance_away_from_the_edges():
    net = model(radius=2)
    x = torch.randn(2, 12, 20, 20)
    shift = (3, -4)
    moved = net(torch.roll(x, shift, dims=(-2, -1)))
    expected = torch.roll(net(x), shift, dims=(-2, -1))
    # Columns whose 5x5 neighbourhood is untouched by the zero padding and the roll seam.
    torch.testing.assert_close(moved[..., 5:14, 6:13], expected[..., 5:14, 6:13])
    assert (moved - expected).abs().max() > 1e-3  # near the edges it is not a symmetry


def test_profile_loss_weighs_density_and_velocity_bins_equally():
    target = torch.zeros(2, 6, 3, 3)
    pred = torch.zeros(2, 6, 3, 3)
    pred[:, 0] = 3.0  # one of three density bins off by 3: density MSE 3
    pred[:, 3:] = 1.0  # all velocity bins off by 1: velocity MSE 1
    assert profile_loss(pred, target).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="share a shape"):
        profile_loss(pred, target[:, :4])


def test_tiny_training_run_beats_the_flat_profile_baseline(tmp_path):
    """64 tiny noisy cores with a beam, 8 epochs (a few seconds): the network's profiles beat
    the moments-as-flat-profile baseline on held-out cores, in density and in velocity."""
    config = tiny_config()
    train = write_cube_shard(config, "train", 0, 64, 0, tmp_path / "train.h5")
    test = read_cube_shard(write_cube_shard(config, "test", 0, 16, 0, tmp_path / "test.h5"))
    scaling = fit_scaling([train])
    shard = read_cube_shard(train)
    x = torch.from_numpy(scale_cubes(shard.cubes, scaling))
    y = torch.from_numpy(scale_profiles(shard.density, shard.velocity, scaling))

    torch.manual_seed(0)
    net = ProfileCNN3d(config.n_channels, config.n_bins, hidden=32, stem=4)
    epochs, batch = 8, 8
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=epochs * (len(x) // batch)
    )
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x))
        for i in range(len(x) // batch):
            idx = order[i * batch : (i + 1) * batch]
            loss = profile_loss(net(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    with torch.no_grad():
        predicted = net(torch.from_numpy(scale_cubes(test.cubes, scaling))).numpy()
    network = profile_metrics(*unscale_profiles(predicted, scaling), test.density, test.velocity)
    baseline = profile_metrics(
        *flat_profile_baseline(test.cubes, config), test.density, test.velocity
    )
    assert network["density_rmse_dex"] < 0.8 * baseline["density_rmse_dex"]
    assert network["velocity_rmse_kms"] < baseline["velocity_rmse_kms"]
    assert network["density_r2"] > baseline["density_r2"] + 0.2
