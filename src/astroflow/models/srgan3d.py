"""The srgan3d networks: a generator that adds a learned residual to the upsampled input, and
a critic that judges a high-resolution candidate beside the upsampled input.

Generator (map2map style): the low-resolution input (B, C, c + 2p, ...) carries ``p = padding``
voxels of context on every side. The skip path is trilinear upsampling (cell-centred); the
residual path runs valid (unpadded) 3x3x3 convolutions at low resolution, then, per factor of
two, nearest-neighbour upsampling, noise injection and two more valid convolutions. Nothing is
zero-padded, so an output voxel depends only on input voxels within the padding: a volume cut
into tiles, each padded from its periodic neighbours, gives the output of a single pass
(:mod:`astroflow.families.srgan3d.inference`). Noise fields can be passed in, cut from fields
of the whole volume, so that tiling holds for the stochastic part too. A ``spectral`` generator
takes its skip path as an argument instead: the high-resolution window of the spectral (FFT)
interpolation of the whole periodic input, which a crop cannot compute but the caller can.

Critic: the candidate concatenated with the upsampled input (2C channels), strided
convolutions, a score per patch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

LRELU = 0.2


def upsample(x: torch.Tensor, factor: int, pad: int) -> torch.Tensor:
    """Trilinear, cell-centred upsampling of a padded input (B, C, c + 2 pad, ...) to the
    (B, C, factor c, ...) high-resolution cells of its unpadded centre (pad >= 1)."""
    up = F.interpolate(x, scale_factor=factor, mode="trilinear", align_corners=False)
    edge = factor * pad
    return up[..., edge:-edge, edge:-edge, edge:-edge]


def _conv_block(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(n_in, n_out, 3),
        nn.LeakyReLU(LRELU),
        nn.Conv3d(n_out, n_out, 3),
        nn.LeakyReLU(LRELU),
    )


NOISE_AMPLITUDE = 0.3
"""Initial amplitude of the injected noise. Started at zero (StyleGAN's choice) the critic's
gradient reaches the noise only slowly: after 320 steps of the default experiment the median
small-scale |P/P_true - 1| was 0.55-0.76 per channel, against 0.26-0.42 from 0.3 (and
0.26-0.42 from 1.0)."""


class NoiseInjection(nn.Module):
    """Adds one noise field (B, 1, ...) with a learned amplitude per feature."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((1, width, 1, 1, 1), NOISE_AMPLITUDE))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + self.weight * noise


class Generator(nn.Module):
    """Low-resolution volumes of ``channels`` channels to volumes ``factor`` (2 or 4) times finer.

    ``width`` features at low resolution, halved (at least 8) per factor of two;
    ``checkpointing`` recomputes the high-resolution blocks in the backward pass instead of
    storing their activations (less memory, about a third more compute). ``spectral``: the
    skip path is passed to :meth:`forward` (the spectral interpolation of the whole input),
    not the trilinear upsampling of the crop.
    """

    def __init__(
        self,
        channels: int,
        factor: int,
        width: int = 32,
        checkpointing: bool = False,
        spectral: bool = False,
    ) -> None:
        super().__init__()
        if factor not in (2, 4):
            raise ValueError(f"factor must be 2 or 4, got {factor}")
        self.channels, self.factor, self.checkpointing = channels, factor, checkpointing
        self.spectral = spectral
        self.head = _conv_block(channels, width)
        widths = [width]
        for _ in range(int(math.log2(factor))):
            widths.append(max(widths[-1] // 2, 8))
        self.noise = nn.ModuleList(NoiseInjection(w) for w in widths[:-1])
        self.stages = nn.ModuleList(
            _conv_block(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.tail = nn.Conv3d(widths[-1], channels, 1)
        self.padding = self._minimal_padding()

    def windows(self, crop: int) -> list[tuple[int, int]]:
        """Per stage, (offset, size) of the noise field it adds, in that stage's voxels
        relative to the crop origin, for an input of ``crop`` voxels plus the padding."""
        start, size = -self.padding + 2, crop + 2 * self.padding - 4  # after the head
        out = []
        for _ in self.stages:
            start, size = 2 * start, 2 * size
            out.append((start, size))
            start, size = start + 2, size - 4
        return out

    def _minimal_padding(self) -> int:
        """The least padding whose valid convolutions still cover every output voxel."""
        for pad in range(1, 64):
            self.padding = pad
            start, _ = self.windows(1)[-1]
            if start + 2 <= 0:
                return pad
        raise AssertionError("no padding found")

    def draw_noise(
        self, batch: int, crop: int, like: torch.Tensor, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """Fresh unit Gaussian noise fields for each stage of a batch of crops."""
        return [
            torch.randn((batch, 1, size, size, size), generator=generator).to(like)
            if generator is not None
            else torch.randn((batch, 1, size, size, size), device=like.device, dtype=like.dtype)
            for _, size in self.windows(crop)
        ]

    def forward(
        self,
        x: torch.Tensor,
        noise: list[torch.Tensor] | None = None,
        skip: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, C, c + 2 padding, ...) -> (B, C, factor c, ...); ``skip`` (B, C, factor c, ...)
        is the field the residual is added to (a spectral generator needs it; otherwise the
        trilinear upsampling of ``x``)."""
        crop = x.shape[-1] - 2 * self.padding
        if crop < 1:
            raise ValueError(f"input of {x.shape[-1]} voxels is not more than 2 x {self.padding}")
        if skip is None:
            if self.spectral:
                raise ValueError(
                    "a spectral generator needs its skip path: the window of the spectral "
                    "interpolation of the whole input (see srgan3d.inference.superresolve)"
                )
            skip = upsample(x, self.factor, self.padding)
        if noise is None:
            noise = self.draw_noise(len(x), crop, x)
        h = self.head(x)
        for stage, inject, field in zip(self.stages, self.noise, noise, strict=True):
            h = inject(F.interpolate(h, scale_factor=2, mode="nearest"), field)
            if self.checkpointing and h.requires_grad:
                h = checkpoint(stage, h, use_reentrant=False)
            else:
                h = stage(h)
        residual = self.tail(h)
        edge = (residual.shape[-1] - self.factor * crop) // 2
        if edge:
            residual = residual[..., edge:-edge, edge:-edge, edge:-edge]
        return skip + residual


class Critic(nn.Module):
    """Scores (B, patches) of a candidate (B, C, N, N, N) given the upsampled input beside it.

    Three stride-2 convolutions, so a score sees about 30 voxels; N must be at least 16.
    """

    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv3d(2 * channels, width, 3, padding=1),
            nn.LeakyReLU(LRELU),
        ]
        w = width
        for _ in range(3):
            layers += [nn.Conv3d(w, 2 * w, 4, stride=2, padding=1), nn.LeakyReLU(LRELU)]
            w *= 2
        layers.append(nn.Conv3d(w, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, candidate: torch.Tensor, upsampled: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([candidate, upsampled], dim=1)).flatten(1)
