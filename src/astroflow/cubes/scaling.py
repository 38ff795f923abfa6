"""Network-side scaling of cubes and profiles, each with its explicit inverse.

Inputs are brightness temperatures divided by one intensity scale (a linear map: the line's
amplitude carries the column density, so it must not be normalised away per spectrum).
Targets are log10 density and velocity, each standardised; the network's output channels are
(density bins, then velocity bins). All statistics come from training shards only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from astroflow.cubes.shards import read_cube_shard


@dataclass(frozen=True)
class CubeScaling:
    """Scales: ``intensity_k`` (K) for cubes; mean and std of log10 density (log10 cm^-3) and
    of velocity (km/s) for the targets."""

    intensity_k: float
    log_density_mean: float
    log_density_std: float
    velocity_mean_kms: float
    velocity_std_kms: float

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, float]) -> CubeScaling:
        return cls(**{f.name: float(values[f.name]) for f in dataclasses.fields(cls)})


def fit_scaling(shard_paths: Sequence[str | os.PathLike[str]]) -> CubeScaling:
    """Scales from training shards, read one at a time (sums in float64).

    ``intensity_k`` is the rms brightness over all voxels of all cubes, so scaled inputs are
    of order one whatever the tracer's brightness.
    """
    sums = np.zeros(5)
    count_cube = count_profile = 0
    for path in shard_paths:
        shard = read_cube_shard(path)
        log_density = np.log10(shard.density, dtype=np.float64)
        velocity = shard.velocity.astype(np.float64)
        sums += [
            np.sum(np.square(shard.cubes, dtype=np.float64)),
            log_density.sum(),
            np.square(log_density).sum(),
            velocity.sum(),
            np.square(velocity).sum(),
        ]
        count_cube += shard.cubes.size
        count_profile += log_density.size
    if count_cube == 0:
        raise ValueError("fit_scaling needs at least one training shard")
    intensity = np.sqrt(sums[0] / count_cube)
    mean_d, mean_v = sums[1] / count_profile, sums[3] / count_profile
    std_d = np.sqrt(max(sums[2] / count_profile - mean_d**2, 0.0))
    std_v = np.sqrt(max(sums[4] / count_profile - mean_v**2, 0.0))
    if not min(intensity, std_d, std_v) > 0:
        raise ValueError(f"training shards {list(shard_paths)} have constant cubes or targets")
    return CubeScaling(float(intensity), float(mean_d), float(std_d), float(mean_v), float(std_v))


def scale_cubes(cubes: np.ndarray, scaling: CubeScaling) -> np.ndarray:
    """Network input: cubes (..., nv, ny, nx) in K divided by the intensity scale (float32)."""
    return (np.asarray(cubes, dtype=np.float32) / np.float32(scaling.intensity_k)).astype(
        np.float32
    )


def unscale_cubes(x: np.ndarray, scaling: CubeScaling) -> np.ndarray:
    """Inverse of :func:`scale_cubes`: brightness temperature in K (float32)."""
    return (np.asarray(x, dtype=np.float32) * np.float32(scaling.intensity_k)).astype(np.float32)


def scale_profiles(density: np.ndarray, velocity: np.ndarray, scaling: CubeScaling) -> np.ndarray:
    """Network target (..., 2 nb, ny, nx) float32 from density (cm^-3) and velocity (km/s)
    profiles (..., nb, ny, nx): standardised log10 density bins, then velocity bins."""
    d = (np.log10(density, dtype=np.float64) - scaling.log_density_mean) / scaling.log_density_std
    v = (np.asarray(velocity, dtype=np.float64) - scaling.velocity_mean_kms) / (
        scaling.velocity_std_kms
    )
    return np.concatenate([d, v], axis=-3).astype(np.float32)


def unscale_profiles(y: np.ndarray, scaling: CubeScaling) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`scale_profiles`: density (cm^-3) and velocity (km/s) profiles."""
    y = np.asarray(y, dtype=np.float64)
    nb = y.shape[-3] // 2
    log_density = y[..., :nb, :, :] * scaling.log_density_std + scaling.log_density_mean
    velocity = y[..., nb:, :, :] * scaling.velocity_std_kms + scaling.velocity_mean_kms
    return (10.0**log_density).astype(np.float32), velocity.astype(np.float32)
