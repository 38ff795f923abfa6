"""Where the line of a real cube lies, before a network sees it.

A cube whose emission falls outside the training channels becomes an all-zero input, and the
network still answers with plausible-looking profiles. So the emission is located first, in
the cube's own frame: the mean spectrum over the unblanked columns, its baseline (a low
percentile, since a line may fill most of a narrow band), its noise (from the channel-to-channel
differences of single pixels, which a broad line hardly affects), and the channels clearly
above the baseline. Their intensity-weighted velocity is the systemic velocity, which a cube
can be centred on; a cube without emission, or whose emission lies mostly outside the
training channels, is refused with a message saying which config key moves it.
"""

from __future__ import annotations

import os

import numpy as np

from astroflow.cubes.fits import FitsCubeError, PPVCube

BASELINE_PERCENTILE = 10.0
"""Percentile of the mean spectrum taken as its baseline."""

DETECTION_SIGMA = 5.0
"""The mean spectrum must peak this many robust noise sigmas above its baseline."""

EMISSION_FLOOR = 0.1
"""Channels above this fraction of the peak (and above the detection level) are emission."""

MIN_IN_WINDOW = 0.8
"""Fraction of the emission that must fall inside the training channels."""

_MAD_TO_SIGMA = 1.4826


def emission_weights(ppv: PPVCube, path: str | os.PathLike[str]) -> np.ndarray:
    """Emission per channel (nv,) in K above the baseline of the mean spectrum, zero where
    there is none; a blank cube or one without a detected line is a FitsCubeError."""
    if not ppv.valid.any():
        raise FitsCubeError(
            f"{path}: every pixel is blank (NaN or infinite); there is nothing to predict, "
            "remove the file"
        )
    columns = ppv.data[:, ppv.valid].astype(np.float64)
    spectrum = columns.mean(axis=1)
    excess = spectrum - np.percentile(spectrum, BASELINE_PERCENTILE)
    pixel_noise = _MAD_TO_SIGMA * float(np.median(np.abs(np.diff(columns, axis=0)))) / np.sqrt(2)
    sigma = pixel_noise / np.sqrt(columns.shape[1])
    peak = float(excess.max())
    if peak <= 0 or peak <= DETECTION_SIGMA * sigma:
        raise FitsCubeError(
            f"{path}: no line emission found: the mean spectrum peaks {peak:.3g} K above its "
            f"baseline, less than {DETECTION_SIGMA:g} times its noise ({sigma:.3g} K); check "
            "that the file is the line cube"
        )
    threshold = max(DETECTION_SIGMA * sigma, EMISSION_FLOOR * peak)
    return np.where(excess > threshold, excess, 0.0)


def systemic_velocity(ppv: PPVCube, path: str | os.PathLike[str]) -> float:
    """Intensity-weighted velocity (km/s, the cube's frame) of the emission channels."""
    weights = emission_weights(ppv, path)
    return float(np.sum(weights * ppv.velocities) / np.sum(weights))


def check_in_window(
    ppv: PPVCube,
    path: str | os.PathLike[str],
    channels_kms: np.ndarray,
    velocity_offset_kms: float,
) -> None:
    """Refuse a cube whose emission, shifted by ``-velocity_offset_kms``, lies mostly outside
    the training channels ``channels_kms`` (centres, ascending, equally spaced)."""
    weights = emission_weights(ppv, path)
    half = (channels_kms[1] - channels_kms[0]) / 2
    low, high = channels_kms[0] - half, channels_kms[-1] + half
    shifted = ppv.velocities - velocity_offset_kms
    inside = float(np.sum(weights[(shifted >= low) & (shifted <= high)]) / np.sum(weights))
    if inside < MIN_IN_WINDOW:
        centre = float(np.sum(weights * ppv.velocities) / np.sum(weights))
        raise FitsCubeError(
            f"{path}: the line emission lies at {centre:.2f} km/s (intensity-weighted) and only "
            f"{inside:.0%} of it falls inside the training channels {low:.2f}..{high:.2f} km/s "
            f"after subtracting cubes.velocity_offset_kms = {velocity_offset_kms:g}; set "
            f"cubes.velocity_offset_kms to about {centre - (low + high) / 2:.2f} or "
            "cubes.center_on_emission: true (a line wider than the training channels cannot "
            "be predicted)"
        )
