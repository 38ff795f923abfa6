"""Spectral moment maps of PPV cubes: what an observer measures before any model.

Moment 0 is the integrated intensity (K km/s), moment 1 the intensity-weighted mean velocity
(km/s), moment 2 the intensity-weighted velocity variance (km^2/s^2) of each spectrum. They are
the physical check of the synthetic cubes (moment 0 is proportional to the column, moment 2 is
the line width) and the baseline the network has to beat.
"""

from __future__ import annotations

import numpy as np


def moment_maps(
    cube: np.ndarray, channels: np.ndarray, clip: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moments 0, 1, 2 of every spectrum of ``cube`` (..., nv, ny, nx) in K; each (..., ny, nx).

    ``channels`` (nv,) are the channel velocities in km/s, equally spaced. With ``clip`` (K),
    only channels brighter than ``clip`` count, the usual guard against noise dominating the
    higher moments; without it every channel counts, which keeps moment 0 unbiased by noise.
    Moments 1 and 2 are NaN where the weights do not sum to a positive number. Computed in
    float64.
    """
    cube = np.asarray(cube, dtype=np.float64)
    channels = np.asarray(channels, dtype=np.float64)
    if cube.ndim < 3 or cube.shape[-3] != channels.size:
        raise ValueError(
            f"cube must be (..., nv, ny, nx) with nv = {channels.size} channels, got {cube.shape}"
        )
    width = abs(channels[1] - channels[0]) if channels.size > 1 else 1.0
    weight = cube if clip is None else np.where(cube > clip, cube, 0.0)
    v = channels[:, None, None]
    m0 = weight.sum(axis=-3) * width
    with np.errstate(invalid="ignore", divide="ignore"):
        positive = m0 > 0
        m1 = np.where(positive, (weight * v).sum(axis=-3) * width / m0, np.nan)
        offset = v - m1[..., None, :, :]
        m2 = np.where(positive, (weight * offset**2).sum(axis=-3) * width / m0, np.nan)
    return m0, m1, m2
