"""Super-resolution of whole periodic volumes, tile by tile.

A volume larger than memory allows in one pass is cut into tiles of ``tile`` low-resolution
voxels; each tile gets the generator's padding from its periodic neighbours, and the noise
fields of every stage are drawn once for the whole volume and cut to each tile's window. The
generator has no zero padding, so the stitched output equals a single pass over the whole
volume (up to float rounding of convolutions of other sizes: ~1e-6 relative).

A generator built with ``spectral`` adds its residual to the spectral (FFT) interpolation of
the whole periodic input instead of the trilinear one, cut to each tile like the noise. With
``keep_resolved`` the stitched output's modes below the low-resolution Nyquist frequency are
replaced by the input's (:func:`~astroflow.volumes.resample.project_resolved`): the
low-resolution grid holds them exactly, so the product keeps them exactly. The projection
acts on the whole volume, after the tiles, so tiling still changes nothing.
"""

from __future__ import annotations

import numpy as np
import torch

from astroflow.models.srgan3d import Generator, upsample
from astroflow.volumes.dataset import periodic_crop
from astroflow.volumes.resample import project_resolved, spectral_upsample


def noise_fields(generator: Generator, coarse: int, seed: int) -> list[np.ndarray]:
    """Unit Gaussian noise of every stage over a whole volume of ``coarse`` voxels per side."""
    rng = torch.Generator().manual_seed(seed)
    return [
        torch.randn((1, *(coarse * 2 ** (s + 1),) * 3), generator=rng).numpy()
        for s in range(len(generator.stages))
    ]


@torch.no_grad()
def superresolve(
    generator: Generator,
    lr: np.ndarray,
    *,
    tile: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    keep_resolved: bool = False,
) -> np.ndarray:
    """Generator output (C, f M, f M, f M) for a periodic scaled volume ``lr`` (C, M, M, M),
    computed in tiles of ``tile`` voxels per side (a divisor of M, or M or more for one
    pass); ``seed`` fixes the noise. A ``spectral`` generator gets the tiles of the input's
    spectral interpolation as its skip path. With ``keep_resolved``, the stitched output's
    modes below the low-resolution Nyquist frequency (|k| < M / 2 fundamentals) are the
    input's (:func:`~astroflow.volumes.resample.project_resolved`)."""
    generator = generator.eval()
    m, f, pad = lr.shape[-1], generator.factor, generator.padding
    size = min(tile, m)
    if m % size:
        raise ValueError(f"tile {tile} must divide the volume side {m} (or exceed it)")
    noise = noise_fields(generator, m, seed)
    skip = spectral_upsample(lr, f) if generator.spectral else None
    out = np.empty((lr.shape[0], *(f * m,) * 3), np.float32)
    starts = range(0, m, size)
    for z in starts:
        for y in starts:
            for x in starts:
                origin = (z, y, x)
                inputs = torch.from_numpy(periodic_crop(lr, origin, size, pad))[None]
                fields = [
                    torch.from_numpy(
                        periodic_crop(field, [2 ** (s + 1) * o + start for o in origin], width, 0)
                    )[None]
                    for s, (field, (start, width)) in enumerate(
                        zip(noise, generator.windows(size), strict=True)
                    )
                ]
                if skip is not None:
                    window = torch.from_numpy(
                        periodic_crop(skip, [f * o for o in origin], f * size, 0)
                    )[None].to(device)
                else:
                    window = None
                result = generator(inputs.to(device), [n.to(device) for n in fields], window)
                out[:, f * z : f * (z + size), f * y : f * (y + size), f * x : f * (x + size)] = (
                    result[0].float().cpu().numpy()
                )
    return project_resolved(out, lr, f, k_max=m / 2) if keep_resolved else out


@torch.no_grad()
def trilinear(lr: np.ndarray, factor: int) -> np.ndarray:
    """Periodic trilinear (cell-centred) upsampling of a volume (C, M, M, M): the baseline."""
    padded = torch.from_numpy(periodic_crop(np.asarray(lr, np.float32), (0, 0, 0), lr.shape[-1], 1))
    return upsample(padded[None], factor, 1)[0].numpy()


def tricubic(lr: np.ndarray, factor: int) -> np.ndarray:
    """Periodic cubic B-spline (cell-centred) upsampling of a volume (C, M, M, M): the baseline
    with continuous gradients."""
    from scipy.ndimage import map_coordinates

    m = lr.shape[-1]
    axis = (np.arange(factor * m) + 0.5) / factor - 0.5
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"))
    return np.stack(
        [map_coordinates(c.astype(np.float64), grid, order=3, mode="grid-wrap") for c in lr]
    ).astype(np.float32)
