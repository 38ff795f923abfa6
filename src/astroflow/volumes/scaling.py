"""Per-channel scaling of volumes for the networks, with its exact inverse.

Densities (positive, log-normal-like) are log-scaled, every channel is then standardised with
the mean and standard deviation of the high-resolution training volumes. The same transform
applies to inputs and targets, so the residual a generator learns is in one set of units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from astroflow.volumes.shards import is_density


@dataclass(frozen=True)
class VolumeScaling:
    """``log`` per channel, then (x - mean) / std per channel."""

    log: tuple[bool, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def forward(self, volumes: np.ndarray) -> np.ndarray:
        """Physical (..., C, D, H, W) -> scaled float32."""
        out = np.array(volumes, dtype=np.float64)
        for c, log in enumerate(self.log):
            if log:
                out[..., c, :, :, :] = np.log(out[..., c, :, :, :])
            out[..., c, :, :, :] = (out[..., c, :, :, :] - self.mean[c]) / self.std[c]
        return out.astype(np.float32)

    def inverse(self, scaled: np.ndarray) -> np.ndarray:
        """Scaled (..., C, D, H, W) -> physical float32."""
        out = np.array(scaled, dtype=np.float64)
        for c, log in enumerate(self.log):
            out[..., c, :, :, :] = out[..., c, :, :, :] * self.std[c] + self.mean[c]
            if log:
                out[..., c, :, :, :] = np.exp(out[..., c, :, :, :])
        return out.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"log": list(self.log), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VolumeScaling:
        return cls(tuple(data["log"]), tuple(data["mean"]), tuple(data["std"]))


def fit_scaling(hr: np.ndarray, channels: Sequence[str]) -> VolumeScaling:
    """Scaling from high-resolution training volumes ``hr`` (n, C, N, N, N)."""
    log = tuple(is_density(name) for name in channels)
    means, stds = [], []
    for c, is_log in enumerate(log):
        values = np.log(hr[:, c]) if is_log else hr[:, c].astype(np.float64)
        means.append(float(values.mean()))
        stds.append(float(values.std()) or 1.0)
    return VolumeScaling(log, tuple(means), tuple(stds))
