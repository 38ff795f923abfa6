"""The settings of a synthetic volume pair, checked without loading the synthesis.

Kept apart from :mod:`astroflow.volumes.synthetic` (which needs scipy's FFT) because every
workflow parse, on every cluster job, checks the ``volumes`` config section through them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class VolumeConfig:
    """What a synthetic pair is made of; every field is in the ``volumes`` config section."""

    grid_size: int = 32
    """High-resolution voxels per side."""
    factor: int = 2
    """Coarsening per axis of the low-resolution grid (2 or 4)."""
    box_size: float = 64.0
    """Side of the periodic box in Mpc/h."""
    spectral_index: float = -2.0
    """n of the linear power spectrum P(k) ∝ k^n."""
    log_density_sigma: float = 0.8
    """rms of ln(density) on the high-resolution grid."""
    velocity_rms_kms: float = 300.0
    """rms of each velocity component on the high-resolution grid (km/s)."""

    def __post_init__(self) -> None:
        if self.factor not in (2, 4):
            raise ValueError(f"factor must be 2 or 4, got {self.factor}")
        if self.grid_size % self.factor or self.grid_size // self.factor < 4:
            raise ValueError(
                f"grid_size {self.grid_size} must be a multiple of factor {self.factor} "
                "leaving at least 4 coarse voxels per side"
            )
        for key in ("box_size", "log_density_sigma", "velocity_rms_kms"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)}")

    @property
    def coarse_size(self) -> int:
        return self.grid_size // self.factor

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthesis_settings(section: dict[str, Any]) -> dict[str, Any]:
    """The :class:`VolumeConfig` keys of the workflow's ``volumes`` config section."""
    return {key: section[key] for key in VolumeConfig.__dataclass_fields__ if key in section}
