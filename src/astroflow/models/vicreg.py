"""VICReg for 2D maps: an encoder whose embedding is the product, an expander that only
trains it, and the variance-invariance-covariance loss (Bardes, Ponce & LeCun 2022).

The encoder is the cnn2d trunk (circular 3x3 convolutions, learned stride-2 downsampling to
4x4, global average) followed by a linear map to the embedding. With ``n_fields > 1`` one
encoder serves several fields, one field per input channel: a learned per-field bias after the
first convolution tells it which field it is looking at, so the two views of a ``fields``
pair share every weight but that bias.

The product network (:class:`VICRegNet`) also keeps copies of the encoder taken at the end of
chosen epochs (``snapshot_epochs``): the embedding-evolution figure maps the test set through
them, and as part of the weights they survive checkpoints and land in the model file.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from astroflow.models.cnn2d import FINAL_SIZE, MIN_MAP_SIZE, NEGATIVE_SLOPE, conv_bn_act

VARIANCE_EPS = 1e-4
"""Added to the variance before the square root: keeps the gradient finite at collapse, and
caps the variance term at 1 - sqrt(VARIANCE_EPS)."""


class Encoder(nn.Module):
    """Maps (B, C, N, N) -> embeddings (B, embedding_dim).

    ``field`` (B,) int selects the per-field bias when the encoder is shared by ``n_fields``
    fields (then C = 1); with ``n_fields = 1`` it is ignored.
    """

    def __init__(
        self, in_channels: int, map_size: int, width: int, embedding_dim: int, n_fields: int = 1
    ) -> None:
        super().__init__()
        if map_size < MIN_MAP_SIZE or map_size & (map_size - 1):
            raise ValueError(f"map_size must be a power of two >= {MIN_MAP_SIZE}, got {map_size}")
        if min(in_channels, width, embedding_dim, n_fields) < 1:
            raise ValueError(
                f"in_channels, width, embedding_dim and n_fields must be >= 1, got "
                f"{in_channels}, {width}, {embedding_dim}, {n_fields}"
            )
        n_blocks = (map_size // FINAL_SIZE).bit_length() - 1
        widths = [width * 2 ** min(i, 4) for i in range(n_blocks)]
        stem, *rest = conv_bn_act(in_channels, widths[0], kernel=3, stride=1)
        self.stem = stem
        self.field_bias = nn.Embedding(n_fields, widths[0]) if n_fields > 1 else None
        layers: list[nn.Module] = [*rest, *conv_bn_act(widths[0], widths[0], kernel=2, stride=2)]
        c_in = widths[0]
        for w in widths[1:]:
            layers += conv_bn_act(c_in, w, kernel=3, stride=1)
            layers += conv_bn_act(w, w, kernel=2, stride=2)
            c_in = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, embedding_dim)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor, field: torch.Tensor | None = None) -> torch.Tensor:
        h = self.stem(x)
        if self.field_bias is not None:
            if field is None:
                raise ValueError("a shared multi-field encoder needs the field of every map")
            h = h + self.field_bias(field)[:, :, None, None]
        return self.head(self.body(h).mean(dim=(-2, -1)))


def expander(embedding_dim: int, width: int) -> nn.Sequential:
    """The batch-normed MLP that maps embeddings to where the loss acts (three layers, as in
    the paper: the covariance term works better in a wider space than the embedding)."""
    return nn.Sequential(
        nn.Linear(embedding_dim, width),
        nn.BatchNorm1d(width),
        nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        nn.Linear(width, width),
        nn.BatchNorm1d(width),
        nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
        nn.Linear(width, width),
    )


class VICRegNet(nn.Module):
    """Encoder, expander and encoder snapshots.

    ``fields_as_views``: the two views of a pair are two fields of one map (one channel each,
    the shared encoder tells them apart); :meth:`features` of a multi-channel map is then the
    mean of the embeddings of its fields. Otherwise a view is a map with all its channels.
    """

    def __init__(
        self,
        in_channels: int,
        map_size: int,
        width: int = 16,
        embedding_dim: int = 128,
        expander_dim: int = 512,
        fields_as_views: bool = False,
        snapshot_epochs: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.fields_as_views = fields_as_views
        encoder_args = (
            (1, map_size, width, embedding_dim, in_channels)
            if fields_as_views
            else (in_channels, map_size, width, embedding_dim)
        )
        self.encoder = Encoder(*encoder_args)
        self.expander = expander(embedding_dim, expander_dim)
        self.snapshot_epochs = [int(e) for e in snapshot_epochs]
        self.snapshots = nn.ModuleList(Encoder(*encoder_args) for _ in self.snapshot_epochs)
        self.snapshots.requires_grad_(False)
        self.register_buffer(
            "snapshot_taken", torch.zeros(len(self.snapshot_epochs), dtype=torch.bool)
        )

    def trained_parameters(self) -> list[nn.Parameter]:
        """Encoder and expander weights: what the optimizer moves (not the snapshots)."""
        return [*self.encoder.parameters(), *self.expander.parameters()]

    def forward(self, x: torch.Tensor, field: torch.Tensor | None = None) -> torch.Tensor:
        """Expander outputs (B, expander_dim) of one view (B, C, N, N)."""
        return self.expander(self.encoder(x, field))

    def features(self, x: torch.Tensor, snapshot: int | None = None) -> torch.Tensor:
        """Embeddings (B, embedding_dim) of maps (B, C, N, N) by the encoder, or by the
        encoder snapshot number ``snapshot``."""
        encoder = self.encoder if snapshot is None else self.snapshots[snapshot]
        if not self.fields_as_views:
            return encoder(x)
        b, c = x.shape[:2]
        field = torch.arange(c, device=x.device).repeat(b)
        return encoder(x.reshape(b * c, 1, *x.shape[2:]), field).reshape(b, c, -1).mean(dim=1)

    @torch.no_grad()
    def take_snapshot(self, epoch: int) -> None:
        """Copy the encoder into the snapshot of ``epoch`` (a no-op for other epochs)."""
        if epoch in self.snapshot_epochs:
            i = self.snapshot_epochs.index(epoch)
            self.snapshots[i].load_state_dict(self.encoder.state_dict())
            self.snapshot_taken[i] = True


def vicreg_terms(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Invariance, variance and covariance terms of two views' expander outputs (B, D).

    Invariance: mean squared difference of the views. Variance: hinge mean(relu(1 - std)) of
    every dimension over the batch, averaged over the views; its maximum, for a constant
    output, is 1 - sqrt(:data:`VARIANCE_EPS`). Covariance: squared off-diagonal covariances
    divided by D, summed over the views; zero for decorrelated dimensions. Computed in float32.
    """
    z1, z2 = z1.float(), z2.float()
    if z1.shape != z2.shape or z1.ndim != 2 or z1.shape[0] < 2:
        raise ValueError(f"views must share one (B >= 2, D) shape, got {z1.shape}, {z2.shape}")
    invariance = F.mse_loss(z1, z2)
    variance = z1.new_zeros(())
    covariance = z1.new_zeros(())
    n, d = z1.shape
    for z in (z1, z2):
        z = z - z.mean(dim=0)
        std = torch.sqrt(z.var(dim=0) + VARIANCE_EPS)
        variance = variance + F.relu(1.0 - std).mean() / 2
        cov = (z.T @ z) / (n - 1)
        off_diagonal = cov - torch.diag(cov.diagonal())
        covariance = covariance + off_diagonal.pow(2).sum() / d
    return invariance, variance, covariance


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    weights: tuple[float, float, float] = (25.0, 25.0, 1.0),
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Weighted sum of :func:`vicreg_terms` (invariance, variance, covariance weights), and
    the terms."""
    terms = vicreg_terms(z1, z2)
    return sum(w * t for w, t in zip(weights, terms, strict=True)), terms
