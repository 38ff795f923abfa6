"""Conditional generator and projection critic for periodic multifield maps.

Choices made here, for maps that are projections of periodic, statistically homogeneous boxes:

- the latent is a set of Gaussian *fields*, not a vector mapped to a fixed layout:
  ``latent`` channels on a (N/8, N/8) grid, and noise that every block adds, one map per
  feature channel, scaled per channel (StyleGAN's noise inputs, with independent maps). The
  fields hold scatter at the pixel scale (HI, B) that no deterministic upsampling of a coarse
  latent can make, and a critic spots its absence at once. With circular padding and
  nearest upsampling the generator commutes with periodic shifts of all its latents by whole
  cells (a shift of one coarse cell moves the maps by 8 pixels): no position is special;
- conditioning by FiLM: an MLP embeds the (min-max scaled) parameters once, and every block
  scales and shifts its pixel-normalized features with a linear map of that embedding. Nothing
  depends on the other maps of a batch (no batch statistics), so a map depends only on its
  latent and parameters, and the EMA copy needs no re-estimated statistics;
- the critic: spectral norm on every layer, circular padding, average-pool downsampling to a
  4x4 grid, a sum over positions, and the projection term <embed(params), features> of
  Miyato & Koyama (2018) for continuous conditions;
- outputs are linear (no tanh): standardized log10 fields have unit variance and tails of a
  few sigma that a bounded output would clip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

LATENT_STRIDE = 8
"""The latent grid is map_size / LATENT_STRIDE cells on a side (three upsamplings)."""
NEGATIVE_SLOPE = 0.2


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="circular")


def _pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """Features at each pixel scaled to unit rms over channels (Karras et al. 2018)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


NOISE_INIT = 0.0
"""Initial per-channel strength of the noise inputs. Zero, as in StyleGAN: noise added before
the pixel norm at any fixed strength drowns the small signal of a freshly initialized
convolution, and the maps come out as white noise without large-scale structure."""


class FiLMBlock(nn.Module):
    """Conv, added noise, pixel norm, FiLM (scale and shift from the parameter embedding),
    LeakyReLU."""

    def __init__(self, c_in: int, c_out: int, embed: int) -> None:
        super().__init__()
        self.conv = _conv(c_in, c_out)
        self.noise = nn.Parameter(torch.full((1, c_out, 1, 1), NOISE_INIT))
        self.film = nn.Linear(embed, 2 * c_out)
        nn.init.zeros_(self.film.weight)  # start as the unconditional network
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(e)[:, :, None, None].chunk(2, dim=1)
        h = _pixel_norm(self.conv(x) + self.noise * noise) * (1 + scale) + shift
        return F.leaky_relu(h, NEGATIVE_SLOPE)


class Generator(nn.Module):
    """Latents (:meth:`latent_shapes`) and scaled parameters (B, P) -> maps (B, C, N, N).

    ``widths`` are the channels at N/8, N/4, N/2 and N (two FiLM blocks each, the first after
    upsampling); the maps are a 1x1 convolution of the last features.
    """

    def __init__(
        self,
        n_fields: int,
        n_params: int,
        map_size: int,
        latent: int = 16,
        widths: tuple[int, ...] = (64, 48, 32, 16),
        embed: int = 64,
    ) -> None:
        super().__init__()
        if map_size % LATENT_STRIDE or len(widths) != 4:
            raise ValueError(
                f"map_size must be a multiple of {LATENT_STRIDE} and widths 4 numbers, got "
                f"{map_size} and {widths}"
            )
        self.latent, self.latent_size = latent, map_size // LATENT_STRIDE
        self.embed = nn.Sequential(
            nn.Linear(n_params, embed), nn.LeakyReLU(NEGATIVE_SLOPE), nn.Linear(embed, embed)
        )
        blocks, c_in = [], latent
        for width in widths:
            blocks.append(
                nn.ModuleList([FiLMBlock(c_in, width, embed), FiLMBlock(width, width, embed)])
            )
            c_in = width
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(c_in, n_fields, 1)

    def latent_shapes(self, batch: int) -> list[tuple[int, int, int, int]]:
        """Shapes of the Gaussian latents of ``batch`` maps: the latent field, then the noise
        of every FiLM block (two per resolution N/8, N/4, N/2, N), one independent map per
        feature channel, so that fields can carry independent pixel-scale scatter (one map
        shared by all channels makes every field pair correlated with |r| = 1 where the noise
        dominates)."""
        shapes = [(batch, self.latent, self.latent_size, self.latent_size)]
        for i, (first, second) in enumerate(self.blocks):
            size = self.latent_size * 2**i
            for block in (first, second):
                shapes.append((batch, block.conv.out_channels, size, size))
        return shapes

    def forward(self, latents: list[torch.Tensor], params: torch.Tensor) -> torch.Tensor:
        z, *noises = latents
        e = self.embed(params)
        h = z
        for i, (first, second) in enumerate(self.blocks):
            if i:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = second(first(h, e, noises[2 * i]), e, noises[2 * i + 1])
        return self.out(h)


class Critic(nn.Module):
    """Maps (B, C, N, N) and scaled parameters (B, P) -> one score per map (B,).

    ``widths`` are the channels at N, N/2, ... down to the 4x4 grid (one spectrally normalized
    3x3 convolution per level, then 2x2 average pooling).
    """

    def __init__(
        self,
        n_fields: int,
        n_params: int,
        map_size: int,
        widths: tuple[int, ...] = (16, 32, 48, 64, 64),
    ) -> None:
        super().__init__()
        levels = (map_size // 4).bit_length()  # N, N/2, ..., 4
        if map_size < 8 or map_size & (map_size - 1) or len(widths) != levels:
            raise ValueError(
                f"map_size must be a power of two >= 8 and widths hold {levels} numbers "
                f"(one per level down to 4x4), got {map_size} and {widths}"
            )
        layers, c_in = [], n_fields
        for width in widths:
            layers.append(spectral_norm(_conv(c_in, width)))
            c_in = width
        self.convs = nn.ModuleList(layers)
        self.linear = spectral_norm(nn.Linear(c_in, 1))
        self.project = spectral_norm(nn.Linear(n_params, c_in, bias=False))

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        h = x
        for i, conv in enumerate(self.convs):
            h = F.leaky_relu(conv(h), NEGATIVE_SLOPE)
            if i < len(self.convs) - 1:
                h = F.avg_pool2d(h, 2)
        features = h.sum(dim=(-2, -1))
        return self.linear(features).squeeze(1) + (self.project(params) * features).sum(dim=1)
