"""Moment network for 2D maps: posterior mean and standard deviation of parameters per map.

Follows the idea of the CAMELS Multifield Dataset benchmark networks (Villaescusa-Navarro
et al. 2021): a stack of convolution blocks that halve the map until it is small, a fully
connected head, and the "moment" loss that makes the two outputs the posterior mean and
standard deviation without assuming a likelihood. Choices made here:

- circular padding, because the maps are projections of periodic simulation boxes: the
  network sees no edge, and every 3x3 convolution commutes with periodic shifts;
- downsampling by 2x2 convolutions of stride 2 (learned, no padding) until the map is 4x4,
  then a global average over those 4x4 positions. Parameters describe the statistics of a
  homogeneous field, not where a structure sits, and with the average the penultimate
  features are exactly invariant to periodic shifts by multiples of ``map_size / 4`` pixels
  (the total stride); for other shifts they change only through the stride-2 sampling grid;
- one 3x3 convolution per block, widths doubling from ``hidden`` and capped at 16 * hidden:
  on 64x64 maps with hidden=16 this trains at about 500 maps per second on two idle CPU
  cores, which is what lets the default workflow run on a laptop;
- the first 3x3 convolution sees the full-resolution map. Downsampling first would double
  the speed, but on the synthetic three-field maps it lost A_AGN2 entirely (test R^2 0.94
  -> 0.0 with everything else equal): feedback leaves its trace at the pixel scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIN_MAP_SIZE = 16
FINAL_SIZE = 4
"""Blocks halve the map until it is FINAL_SIZE x FINAL_SIZE pixels."""

STD_FLOOR = 1e-6
"""Added to the softplus of the raw output so that the predicted standard deviation is > 0."""

NEGATIVE_SLOPE = 0.2


def conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
    # 3x3 kernels pad one pixel circularly (same size); 2x2 stride-2 kernels need no padding
    # on even sizes. The bias is redundant in front of BatchNorm.
    conv = nn.Conv2d(
        c_in,
        c_out,
        kernel,
        stride=stride,
        padding=kernel // 2 if kernel % 2 else 0,
        padding_mode="circular",
        bias=False,
    )
    return [conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True)]


class MomentCNN2d(nn.Module):
    """Maps (B, C, N, N) -> posterior mean (B, P) and standard deviation (B, P) > 0.

    ``map_size`` N must be a power of two >= 16; the network has log2(N) - 2 blocks. Outputs
    are in the units of the training targets (parameters min-max scaled to [0, 1]).
    :meth:`features` returns the penultimate representation (B, 8 * hidden) used for
    embeddings.
    """

    def __init__(
        self,
        in_channels: int,
        n_params: int,
        map_size: int,
        hidden: int = 16,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if map_size < MIN_MAP_SIZE or map_size & (map_size - 1):
            raise ValueError(f"map_size must be a power of two >= {MIN_MAP_SIZE}, got {map_size}")
        if min(in_channels, n_params, hidden) < 1:
            raise ValueError(
                f"in_channels, n_params and hidden must be >= 1, got {in_channels}, "
                f"{n_params}, {hidden}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_params = n_params
        n_blocks = (map_size // FINAL_SIZE).bit_length() - 1
        widths = [hidden * 2 ** min(i, 4) for i in range(n_blocks)]

        layers: list[nn.Module] = []
        c_in = in_channels
        for width in widths:
            layers += conv_bn_act(c_in, width, kernel=3, stride=1)
            layers += conv_bn_act(width, width, kernel=2, stride=2)
            c_in = width
        self.body = nn.Sequential(*layers)
        self.feature_dim = 8 * hidden
        self.embed = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(c_in, self.feature_dim),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_dim, 2 * n_params))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, feature_dim) of maps ``x`` (B, C, N, N)."""
        pooled = self.body(x).mean(dim=(-2, -1))
        return self.embed(pooled)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(self.features(x))
        mean, raw_std = out[:, : self.n_params], out[:, self.n_params :]
        return mean, F.softplus(raw_std) + STD_FLOOR


def moment_loss(mean: torch.Tensor, std: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Moment-network loss of predictions (B, P) against targets (B, P), a scalar.

    ``sum_j [log mean_b (mu - theta)^2 + log mean_b ((mu - theta)^2 - sigma^2)^2]``. Its minimum
    over functions of the map is reached at mu = E[theta | map] and sigma^2 = Var[theta | map];
    the logarithms balance parameters that are constrained to very different precision. It is
    computed in float32 whatever the autocast precision of the network.
    """
    mean, std, target = mean.float(), std.float(), target.float()
    err2 = (mean - target) ** 2
    loss = torch.log(err2.mean(dim=0)) + torch.log(((err2 - std**2) ** 2).mean(dim=0))
    return loss.sum()
