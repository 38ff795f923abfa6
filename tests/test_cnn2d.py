"""MomentCNN2d and the moment loss: shapes, the loss formula, and the symmetry of the network.

Property of the design (stated in the module docstring): every 3x3 convolution is circularly
padded, so the network sees no edge; the blocks downsample with stride-2 2x2 convolutions to
a 4x4 map that is averaged. Hence the body is equivariant to periodic shifts by multiples of
its total stride N/4 (the 4x4 output rolls by one cell) and the features are invariant to
them; a 1-pixel shift moves the stride-2 sampling grid and is not a symmetry.
"""

import math

import numpy as np
import pytest
import torch

from astroflow.models.cnn2d import MomentCNN2d, moment_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model(map_size=32, **kwargs):
    torch.manual_seed(0)
    net = MomentCNN2d(in_channels=2, n_params=3, map_size=map_size, **kwargs)
    # Non-trivial BatchNorm statistics, so eval mode is not an identity normalization.
    with torch.no_grad():
        net(torch.randn(16, 2, map_size, map_size) * 2 + 0.5)
    return net.eval()


@pytest.mark.parametrize("map_size", [16, 32, 64])
def test_output_shapes_and_positive_std(map_size):
    net = model(map_size, hidden=4)
    x = torch.randn(5, 2, map_size, map_size)
    mean, std = net(x)
    assert mean.shape == std.shape == (5, 3)
    assert (std > 0).all()
    assert net.features(x).shape == (5, 8 * 4)
    # log2(N) - 2 blocks of (3x3 conv, 2x2 stride-2 conv): the body ends at 4x4.
    assert net.body(x).shape[-2:] == (4, 4)


@pytest.mark.parametrize("map_size", [8, 48, 100])
def test_map_size_must_be_power_of_two_at_least_16(map_size):
    with pytest.raises(ValueError, match="power of two"):
        MomentCNN2d(1, 2, map_size)


def test_moment_loss_matches_hand_computation():
    mean = torch.tensor([[1.0, 0.5], [3.0, 0.5]])
    target = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    std = torch.tensor([[1.0, 0.5], [2.0, 1.0]])
    # Parameter 0: errors^2 (1, 9): log(5) + log(mean((1-1)^2, (9-4)^2)) = log 5 + log 12.5.
    # Parameter 1: errors^2 (0.25, 0.25), sigma^2 (0.25, 1): log 0.25 + log(mean(0, 0.5625)).
    expected = math.log(5) + math.log(12.5) + math.log(0.25) + math.log(0.28125)
    assert moment_loss(mean, std, target).item() == pytest.approx(expected, rel=1e-6)


def test_moment_loss_sigma_optimum_is_the_rms_error():
    # For a constant predicted sigma the second term is minimal at sigma^2 = mean(err^2):
    # sigma learns the spread of the errors, which is what makes it a posterior width.
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(1000, 1, generator=gen)
    mean = target + 0.1 * torch.randn(1000, 1, generator=gen)
    rms = (mean - target).pow(2).mean().sqrt().item()
    sigmas = torch.linspace(0.02, 0.3, 281)
    losses = [moment_loss(mean, torch.full_like(mean, s.item()), target).item() for s in sigmas]
    assert sigmas[int(np.argmin(losses))].item() == pytest.approx(rms, abs=1e-3)


def test_first_block_commutes_with_any_periodic_shift():
    net = model(32)
    x = torch.randn(3, 2, 32, 32)
    conv_bn_act = net.body[:3]  # circular 3x3 convolution, BatchNorm, LeakyReLU
    shift = (5, -11)
    shifted = conv_bn_act(torch.roll(x, shift, dims=(-2, -1)))
    torch.testing.assert_close(shifted, torch.roll(conv_bn_act(x), shift, dims=(-2, -1)))


def test_body_is_equivariant_to_shifts_by_the_total_stride():
    net = model(32)  # 3 blocks: total stride 8, output 4x4
    x = torch.randn(3, 2, 32, 32)
    out = net.body(torch.roll(x, (8, 24), dims=(-2, -1)))
    torch.testing.assert_close(out, torch.roll(net.body(x), (1, 3), dims=(-2, -1)))


def test_features_are_invariant_to_stride_shifts_but_not_to_one_pixel():
    net = model(32)
    x = torch.randn(3, 2, 32, 32)
    features = net.features(x)
    torch.testing.assert_close(net.features(torch.roll(x, (16, 8), dims=(-2, -1))), features)
    moved = net.features(torch.roll(x, 1, dims=-1))
    assert (moved - features).abs().max() > 1e-3


def test_eval_mode_is_deterministic_despite_dropout():
    net = model(32, dropout=0.5)
    x = torch.randn(4, 2, 32, 32)
    torch.testing.assert_close(net(x), net(x), rtol=0, atol=0)
    net.train()
    assert not torch.equal(net.features(x), net.features(x))
