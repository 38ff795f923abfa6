"""Map classifiers: maps (B, C, N, N) in, class logits (B, K) out.

Three families that tell kinds of maps apart (e.g. a map from its phase-coupled counterpart,
:mod:`astroflow.maps.surrogates`):

- :class:`Racoon`: three 4x4 convolutions of stride 4 (non-overlapping patches, widths p, 4p,
  8p), then two fully connected layers. The cheapest of the three: on 64x64 maps the body is
  (p, 16, 16) -> (4p, 4, 4) -> (8p, 1, 1).
- :class:`Penguin`: six 4x4 convolutions of stride 2 with one pixel of circular padding
  (widths p, 2p, 4p, 6p, 8p, 10p), then three fully connected layers. The maps are periodic, so
  the padding wraps around and the convolution stack commutes with periodic shifts by
  multiples of its total stride 64.
- :class:`CircularClassifier`: the trunk of :class:`~astroflow.models.cnn2d.MomentCNN2d`
  (circular 3x3 convolutions, stride-2 downsampling to 4x4, global average) with a
  classification head, so its features are invariant to shifts by multiples of N / 4.

Racoon and Penguin follow the RACOON/PENGUIN networks of an earlier study that told two kinds
of simulation slices apart (256x256 there; any multiple of 64 here, the flattened body output
growing as (N / 64)^2). Convolutions carry no bias: BatchNorm follows each one.
Every model has :meth:`features`, the penultimate activations used for embeddings.

Measured on 64x64 synthetic Mgas maps against their counterparts (one CPU thread, about 20 s
of training each, AdamW + one-cycle): CircularClassifier(hidden=4) reaches 0.98-1.0 test
accuracy at strength 1 in 3 epochs; Racoon(layer_param=16) needs strength ~3-4 and 10 epochs;
Penguin(layer_param=8) is still at chance at strength 1 after 8 epochs. The cell walls the
counterparts add are a pixel or two wide, and a full-resolution 3x3 convolution sees them
directly where 4x4 patches of stride 4 or early stride-2 downsampling blur them.
"""

from __future__ import annotations

import torch
from torch import nn

from astroflow.models.cnn2d import MIN_MAP_SIZE, NEGATIVE_SLOPE, MomentCNN2d

STRIDE_MULTIPLE = 64
"""Racoon (4^3) and Penguin (2^6) reduce the map by this factor before the dense layers."""


def _check_common(arch: str, in_channels: int, width: int, dropout: float, n_classes: int) -> None:
    if in_channels < 1 or width < 1:
        raise ValueError(f"{arch}: in_channels and width must be >= 1, got {in_channels}, {width}")
    if n_classes < 2:
        raise ValueError(f"{arch}: n_classes must be >= 2, got {n_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{arch}: dropout must be in [0, 1), got {dropout}")


def _check_multiple_of_64(arch: str, map_size: int) -> int:
    """Return N / 64, or raise naming the architecture and the sizes it takes."""
    if map_size < STRIDE_MULTIPLE or map_size % STRIDE_MULTIPLE:
        raise ValueError(
            f"{arch} needs map_size to be a positive multiple of {STRIDE_MULTIPLE} "
            f"(64, 128, 192, 256, ...): its convolutions reduce the map {STRIDE_MULTIPLE}-fold; "
            f"got {map_size}"
        )
    return map_size // STRIDE_MULTIPLE


def _conv_block(c_in: int, c_out: int, stride: int, padding: int) -> list[nn.Module]:
    conv = nn.Conv2d(
        c_in, c_out, 4, stride=stride, padding=padding, padding_mode="circular", bias=False
    )
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _dense(d_in: int, d_out: int, dropout: float) -> list[nn.Module]:
    return [nn.Dropout(dropout), nn.Linear(d_in, d_out), nn.ReLU(inplace=True)]


class Racoon(nn.Module):
    """Three stride-4 convolutions and two dense layers: (B, C, N, N) -> logits (B, K).

    ``layer_param`` p sets the widths (p, 4p, 8p) and the feature size p; N must be a multiple
    of 64. :meth:`features` returns (B, p).
    """

    def __init__(
        self,
        in_channels: int,
        map_size: int,
        layer_param: int = 16,
        dropout: float = 0.1,
        n_classes: int = 2,
    ) -> None:
        super().__init__()
        _check_common("Racoon", in_channels, layer_param, dropout, n_classes)
        cells = _check_multiple_of_64("Racoon", map_size)
        p = layer_param
        widths = [in_channels, p, 4 * p, 8 * p]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += _conv_block(c_in, c_out, stride=4, padding=0)
        self.body = nn.Sequential(*layers)
        self.feature_dim = p
        self.embed = nn.Sequential(nn.Flatten(), *_dense(8 * p * cells**2, p, dropout))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(p, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, p) of maps ``x`` (B, C, N, N)."""
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Penguin(nn.Module):
    """Six circular stride-2 convolutions and three dense layers: (B, C, N, N) -> (B, K).

    ``layer_param`` p sets the widths (p, 2p, 4p, 6p, 8p, 10p) and the dense sizes 10p -> p;
    N must be a multiple of 64. :meth:`features` returns (B, p).
    """

    def __init__(
        self,
        in_channels: int,
        map_size: int,
        layer_param: int = 8,
        dropout: float = 0.1,
        n_classes: int = 2,
    ) -> None:
        super().__init__()
        _check_common("Penguin", in_channels, layer_param, dropout, n_classes)
        cells = _check_multiple_of_64("Penguin", map_size)
        p = layer_param
        widths = [in_channels, p, 2 * p, 4 * p, 6 * p, 8 * p, 10 * p]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += _conv_block(c_in, c_out, stride=2, padding=1)
        self.body = nn.Sequential(*layers)
        self.feature_dim = p
        self.embed = nn.Sequential(
            nn.Flatten(),
            *_dense(10 * p * cells**2, 10 * p, dropout),
            *_dense(10 * p, p, dropout),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(p, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, p) of maps ``x`` (B, C, N, N)."""
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CircularClassifier(nn.Module):
    """The cnn2d trunk with a classification head: (B, C, N, N) -> logits (B, K).

    N must be a power of two >= 16 (the trunk halves the map to 4x4). The trunk's 4x4 output
    is averaged, so :meth:`features` (B, 8 * hidden) is invariant to periodic shifts by
    multiples of N / 4 pixels.
    """

    def __init__(
        self,
        in_channels: int,
        map_size: int,
        hidden: int = 4,
        dropout: float = 0.1,
        n_classes: int = 2,
    ) -> None:
        super().__init__()
        _check_common("CircularClassifier", in_channels, hidden, dropout, n_classes)
        if map_size < MIN_MAP_SIZE or map_size & (map_size - 1):
            raise ValueError(
                f"CircularClassifier needs map_size to be a power of two >= {MIN_MAP_SIZE} "
                f"(16, 32, 64, 128, ...): its trunk halves the map down to 4x4; got {map_size}"
            )
        # The trunk is the moment network's body; its regression head is dropped.
        self.body = MomentCNN2d(in_channels, 1, map_size, hidden).body
        trunk_width = [m for m in self.body if isinstance(m, nn.BatchNorm2d)][-1].num_features
        self.feature_dim = 8 * hidden
        self.embed = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(trunk_width, self.feature_dim),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_dim, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, 8 * hidden) of maps ``x`` (B, C, N, N)."""
        return self.embed(self.body(x).mean(dim=(-2, -1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
