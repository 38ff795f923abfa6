"""Conditional generator and projection critic for periodic multifield maps.

Choices made here, for maps that are projections of periodic, statistically homogeneous boxes:

- the generator is fully convolutional at the output resolution: its latent is ``latent``
  channels of Gaussian white noise of the maps' size, and every layer is a circular
  convolution, so shifting the noise by any number of pixels shifts the maps by as many (no
  position is special, and nothing has to learn translation invariance). A layer that only
  sees a few pixels cannot make the large-scale modes of the maps, so the noise first passes
  a *spectral filter*: a per-channel isotropic gain g(|k|) in Fourier space (a circular
  convolution with a kernel as large as the map), whose log is a smooth function of log |k|
  (:data:`FILTER_BASIS` Gaussian bumps) with coefficients set by the parameters. Filtered
  noise is a Gaussian field of any spectrum the parameters call for; 3x3 convolutions then
  make it non-Gaussian and couple the fields locally, and a second spectral filter halfway
  lets features spread over scales the parameters decide (winds, outflows). A linear path
  from the filtered noise to the output keeps the Gaussian part of the maps easy to reach;
- conditioning by FiLM: an MLP embeds the (min-max scaled) parameters once, and every block
  scales and shifts its features with a linear map of that embedding, as the filters do
  their gains. Nothing depends on the other maps of a batch (no batch statistics), so a map
  depends only on its noise and parameters, and the EMA copy needs no re-estimated statistics;
- the critic: spectral norm on every layer, circular padding, average-pool downsampling to a
  4x4 grid, a sum over positions, and the projection term <embed(params), features> of
  Miyato & Koyama (2018) for continuous conditions;
- outputs are linear (no tanh): standardized log10 fields have unit variance and tails of a
  few sigma that a bounded output would clip;
- the mean log value and the pixel scale of every field at given parameters have bases that
  are not learnt by gradient: Gaussian-process regressions over the training simulations
  (:class:`KernelRegression`). Both are smooth but strongly non-linear functions of the six
  parameters, known almost without noise from each simulation's maps, and a kernel regression
  interpolates the mean between 140 simulations two to three times closer than the network
  learnt it. The network makes the fluctuations, which the scale multiplies and the mean
  shifts, and learns the small rest of both.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from astroflow.maps.power_spectrum import k_modulus_units

NEGATIVE_SLOPE = 0.2
FILTER_BASIS = 8
"""Gaussian bumps in log |k| whose weighted sum is the log gain of a spectral filter."""


class CircularConv2d(nn.Conv2d):
    """3x3 convolution of periodic maps: one pixel of circular padding, made by concatenation
    (a third faster on the CPU, forward and backward, than ``padding_mode="circular"``)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(c_in, c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[..., -1:, :], x, x[..., :1, :]], dim=-2)
        x = torch.cat([x[..., -1:], x, x[..., :1]], dim=-1)
        return super().forward(x)


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return CircularConv2d(c_in, c_out)


def _log_k_basis(map_size: int, n_basis: int) -> torch.Tensor:
    """(n_basis, N, N//2 + 1): a partition of unity over ln |k| on the rfft2 grid.

    Bumps centred evenly from the fundamental to the corner of the Fourier plane, one spacing
    wide; the k = 0 mode is treated as |k| = 1/2. Being a partition of unity, zero weights
    give a gain of 1 everywhere (the identity).
    """
    log_k = np.log(np.maximum(k_modulus_units(map_size), 0.5))
    centres = np.linspace(0.0, math.log(map_size / math.sqrt(2.0)), n_basis)
    width = centres[1] - centres[0]
    bumps = np.exp(-0.5 * ((log_k[None] - centres[:, None, None]) / width) ** 2)
    return torch.from_numpy(bumps / bumps.sum(axis=0, keepdims=True)).float()


class SpectralFilter(nn.Module):
    """Per-channel isotropic filter of maps (B, C, N, N) in Fourier space, with log gain
    sum_j w_j(embedding) b_j(ln |k|); starts as the identity."""

    def __init__(self, channels: int, embed: int, map_size: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("basis", _log_k_basis(map_size, FILTER_BASIS), persistent=False)
        self.gain = nn.Linear(embed, channels * FILTER_BASIS)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.gain.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        weights = self.gain(e).view(len(e), self.channels, FILTER_BASIS)
        log_gain = torch.einsum("bcj,jyx->bcyx", weights, self.basis)
        modes = torch.fft.rfft2(x.float()) * torch.exp(log_gain)
        return torch.fft.irfft2(modes, s=x.shape[-2:])


class FiLMBlock(nn.Module):
    """Circular 3x3 convolution, FiLM (scale and shift from the parameter embedding),
    LeakyReLU."""

    def __init__(self, c_in: int, c_out: int, embed: int) -> None:
        super().__init__()
        self.conv = _conv(c_in, c_out)
        nn.init.kaiming_normal_(self.conv.weight, a=NEGATIVE_SLOPE)
        nn.init.zeros_(self.conv.bias)
        self.film = nn.Linear(embed, 2 * c_out)
        nn.init.zeros_(self.film.weight)  # start as the unconditional network
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(e)[:, :, None, None].chunk(2, dim=1)
        return F.leaky_relu(self.conv(x) * (1 + scale) + shift, NEGATIVE_SLOPE)


def log_warp(scaled: torch.Tensor, log_ratios: torch.Tensor) -> torch.Tensor:
    """Min-max scaled parameters (..., P) -> the same in log where ``log_ratios`` (P,) holds
    ln(max / min) of a parameter's range (0: kept linear): ln(value / min) / ln(max / min)."""
    warped = torch.log1p(scaled * torch.expm1(log_ratios)) / log_ratios.clamp(min=1e-300)
    return torch.where(log_ratios > 0, warped, scaled)


class KernelRegression(nn.Module):
    """Scaled parameters (B, P) -> one value per field (B, F): the posterior mean of a Gaussian
    process with a Matern 5/2 kernel of one length per field and parameter,
    sum_s w_sf k(|(p - a_s) / l_f|) + b_f over ``n_anchors`` training simulations a_s, with
    k(r) = (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r).

    Parameters sampled uniformly in log (the feedback efficiencies) are first warped to the
    unit interval in log (:func:`log_warp`): min-max scaled linearly, most simulations sit in
    the lowest fifth of their range, where the fields change fastest.

    Buffers, not parameters: they are fitted in closed form before training
    (:func:`astroflow.families.gan2d.kernel_fit.fit_kernel_regression`) and travel in the
    model file.
    Float64, since a process fitted to nearly noiseless means has large weights of both signs
    whose sum loses its digits in float32. All zero (no anchors), it is the zero function.
    """

    def __init__(self, n_fields: int, n_params: int, n_anchors: int = 0) -> None:
        super().__init__()
        wide = torch.float64
        self.register_buffer("anchors", torch.zeros(n_anchors, n_params, dtype=wide))
        self.register_buffer("weights", torch.zeros(n_anchors, n_fields, dtype=wide))
        self.register_buffer("inverse_lengths", torch.zeros(n_fields, n_params, dtype=wide))
        self.register_buffer("bias", torch.zeros(n_fields, dtype=wide))
        self.register_buffer("log_ratios", torch.zeros(n_params, dtype=wide))

    def forward(self, params: torch.Tensor) -> torch.Tensor:
        p = log_warp(params.to(self.anchors.dtype), self.log_ratios)
        offsets = (p[:, None, None, :] - self.anchors[None, :, None, :]) * self.inverse_lengths
        r = math.sqrt(5.0) * offsets.square().sum(dim=-1).sqrt()  # (B, S, F)
        kernel = (1.0 + r + r.square() / 3.0) * torch.exp(-r)
        return (self.bias + (kernel * self.weights).sum(dim=1)).to(params.dtype)


class QuantileMap(nn.Module):
    """Maps (B, F, N, N) -> the same maps with each map's pixels, field by field, moved in rank
    order onto a quantile function predicted at the parameters: value = mean + scale * q(u)
    at the pixel's probability u = (rank + 1/2) / N^2.

    q is the standardized quantile function of the field at ``levels`` equal-probability
    intervals: a mean shape plus ``components`` principal shapes whose coefficients a
    :class:`KernelRegression` predicts from the parameters, made non-decreasing. Inside an
    interval the values are linear about its quantile mean with the smaller of the steps to
    its neighbours as slope: every interval keeps its mean exactly (where the maps' pixels
    split evenly between intervals), and the values never decrease across intervals.
    The order of the pixels, hence the maps' structure, is the caller's; their one-point
    distribution is this interpolation of the training simulations' distributions. All zero
    (``levels`` 0), it is not used.
    """

    def __init__(
        self, n_fields: int, n_params: int, n_anchors: int = 0, levels: int = 0, components: int = 0
    ) -> None:
        super().__init__()
        wide = torch.float64
        self.levels, self.components = levels, components
        self.register_buffer("shape_mean", torch.zeros(n_fields, levels, dtype=wide))
        self.register_buffer("shape_basis", torch.zeros(n_fields, components, levels, dtype=wide))
        self.coefficients = KernelRegression(n_fields * components, n_params, n_anchors)

    def quantiles(self, params: torch.Tensor) -> torch.Tensor:
        """Standardized quantile functions (B, F, levels) at scaled ``params`` (B, P)."""
        c = self.coefficients(params.to(self.shape_mean.dtype)).unflatten(-1, (-1, self.components))
        shape = self.shape_mean + torch.einsum("bfk,fkl->bfl", c, self.shape_basis)
        return shape.cummax(dim=-1).values

    def forward(
        self, maps: torch.Tensor, params: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        flat = maps.flatten(2)
        n = flat.shape[-1]
        order = flat.argsort(dim=-1)
        ranks = torch.empty_like(order).scatter_(
            -1, order, torch.arange(n, device=maps.device).expand_as(order)
        )
        position = (ranks.to(torch.float64) + 0.5) * (self.levels / n)
        level = position.long().clamp(max=self.levels - 1)
        q = self.quantiles(params)
        steps = q.diff(dim=-1)
        slopes = torch.minimum(
            torch.cat([steps[..., :1], steps], -1), torch.cat([steps, steps[..., -1:]], -1)
        )
        offset = position - level - 0.5  # in [-1/2, 1/2) about the level's centre
        standard = q.gather(-1, level) + offset * slopes.gather(-1, level)
        values = mean.to(q.dtype)[:, :, None] + scale.to(q.dtype)[:, :, None] * standard
        return values.to(maps.dtype).view_as(maps)


class Generator(nn.Module):
    """White noise (:meth:`latent_shapes`) and scaled parameters (B, P) -> maps (B, C, N, N).

    The noise (``latent`` channels) is spectrally filtered, then goes through ``depth``
    FiLM blocks of ``width`` channels at full resolution, with a spectral filter of the
    features after the first half of them; the maps are a 1x1 convolution of the last
    features plus one of the filtered noise; these fluctuations are multiplied by the fitted
    pixel scale of every field at the parameters and shifted by its fitted mean (two
    :class:`KernelRegression` over ``kernel_anchors`` training simulations) plus a learnt
    correction of the mean, a linear function of the parameter embedding (zero at first).

    With ``shape_levels`` (a :class:`QuantileMap`), the maps of the network in eval mode, the
    one every product uses, have their pixels moved in rank order onto the quantile function
    the training simulations' distributions predict at the parameters, about the fitted mean
    and scale: the network is trained as without it, and supplies the order of the pixels.
    """

    def __init__(
        self,
        n_fields: int,
        n_params: int,
        map_size: int,
        latent: int = 8,
        width: int = 32,
        depth: int = 4,
        embed: int = 64,
        kernel_anchors: int = 0,
        shape_levels: int = 0,
        shape_components: int = 0,
    ) -> None:
        super().__init__()
        if depth < 1 or map_size < 4:
            raise ValueError(f"depth must be >= 1 and map_size >= 4, got {depth}, {map_size}")
        if shape_levels == 1 or (shape_levels and not shape_components):
            raise ValueError(
                f"shape_levels must be 0 or >= 2 with shape_components >= 1, got "
                f"{shape_levels} and {shape_components}"
            )
        self.latent, self.map_size = latent, map_size
        self.embed = nn.Sequential(
            nn.Linear(n_params, embed), nn.LeakyReLU(NEGATIVE_SLOPE), nn.Linear(embed, embed)
        )
        self.noise_filter = SpectralFilter(latent, embed, map_size)
        blocks, c_in = [], latent
        for _ in range(depth):
            blocks.append(FiLMBlock(c_in, width, embed))
            c_in = width
        self.blocks = nn.ModuleList(blocks)
        self.middle = depth // 2 if depth > 1 else 1
        self.feature_filter = SpectralFilter(width, embed, map_size)
        self.out = nn.Conv2d(width, n_fields, 1)
        self.linear = nn.Conv2d(latent, n_fields, 1)
        self.offset = nn.Linear(embed, n_fields)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.mean = KernelRegression(n_fields, n_params, kernel_anchors)
        self.log_scale = KernelRegression(n_fields, n_params, kernel_anchors)
        self.quantile_map = QuantileMap(
            n_fields, n_params, kernel_anchors, shape_levels, shape_components
        )

    def latent_shapes(self, batch: int) -> list[tuple[int, int, int, int]]:
        """Shapes of the Gaussian latents of ``batch`` maps: one white-noise field of
        ``latent`` channels at the maps' resolution."""
        return [(batch, self.latent, self.map_size, self.map_size)]

    def forward(
        self, latents: list[torch.Tensor], params: torch.Tensor, mapped: bool | None = None
    ) -> torch.Tensor:
        """Maps from ``latents`` at ``params``; through the quantile map where there is one
        and ``mapped`` says so (default: in eval mode)."""
        (z,) = latents
        e = self.embed(params)
        g = self.noise_filter(z, e)
        h = g
        for i, block in enumerate(self.blocks):
            if i == self.middle:
                h = self.feature_filter(h, e)
            h = block(h, e)
        if self.middle >= len(self.blocks):
            h = self.feature_filter(h, e)
        fitted_mean = self.mean(params)
        mean = self.offset(e) + fitted_mean
        scale = torch.exp(self.log_scale(params))
        fluctuation = self.out(h) + self.linear(g)
        maps = fluctuation * scale[:, :, None, None] + mean[:, :, None, None]
        if self.quantile_map.levels and (not self.training if mapped is None else mapped):
            return self.quantile_map(maps, params, fitted_mean, scale)
        return maps

    def map_pixels(self, maps: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The network's ``maps`` (``mapped=False``) at ``params`` as the products have them:
        through the quantile map where there is one, so both come from one network pass."""
        if not self.quantile_map.levels:
            return maps
        scale = torch.exp(self.log_scale(params))
        return self.quantile_map(maps, params, self.mean(params), scale)


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
