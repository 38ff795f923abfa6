"""The flat-profile baseline and the profile metrics the network is judged by.

The baseline is what an observer gets from the moments alone, with the same line physics as the
synthesis and nothing learned: moment 0 divided by kappa is the column density, spread evenly
along the line of sight (the mean density over the box depth); moment 1 is one velocity for the
whole column. A network that reads profiles from spectra has to beat this to be worth its cost.
"""

from __future__ import annotations

import numpy as np

from astroflow.cubes.config import PC_CM, CoreConfig
from astroflow.cubes.moments import moment_maps
from astroflow.evaluation.regression import r2_score

CLIP_SIGMA = 3.0
"""Channels below this many noise rms do not count towards the baseline's moment 1."""


def flat_profile_baseline(cube: np.ndarray, config: CoreConfig) -> tuple[np.ndarray, np.ndarray]:
    """Flat density and velocity profiles (..., n_bins, ny, nx) from cube(s) (..., nv, ny, nx).

    Density (cm^-3): moment 0 / (kappa * box depth), floored at the moment 0 of one noise rms
    (noise makes faint columns' moment 0 negative, and a density must be positive). Velocity
    (km/s): moment 1 over channels above CLIP_SIGMA noise rms; a column with no such channel
    gets the centroid of its cube's summed spectrum over the channels where that spectrum is
    above CLIP_SIGMA times its own noise, the systemic velocity an observer would assume (the
    band's centre when the cube shows no line at all: a centroid of pure noise can fall far
    outside the band). ``config`` gives the channels, kappa, depth, bins and noise.
    """
    cube = np.asarray(cube, dtype=np.float64)
    channels = config.channels_kms
    width = config.channel_width_kms
    m0, _, _ = moment_maps(cube, channels)
    floor = max(config.noise_rms_k * width * np.sqrt(channels.size), np.finfo(np.float32).tiny)
    density = np.maximum(m0, floor) / (config.kappa * config.box_size_pc * PC_CM)

    clip = CLIP_SIGMA * config.noise_rms_k if config.noise_rms_k > 0 else None
    _, m1, _ = moment_maps(cube, channels, clip=clip)
    summed = cube.sum(axis=(-2, -1))  # (..., nv)
    pixels = cube.shape[-2] * cube.shape[-1]
    detected = np.where(summed > CLIP_SIGMA * config.noise_rms_k * np.sqrt(pixels), summed, 0.0)
    total = detected.sum(axis=-1)
    centroid = (detected * channels).sum(axis=-1) / np.where(total > 0, total, 1.0)
    systemic = np.where(total > 0, centroid, channels.mean())
    velocity = np.where(np.isfinite(m1), m1, systemic[..., None, None])

    shape = (*m0.shape[:-2], config.n_bins, *m0.shape[-2:])
    return (
        np.broadcast_to(density[..., None, :, :], shape).astype(np.float32),
        np.broadcast_to(velocity[..., None, :, :], shape).astype(np.float32),
    )


def profile_metrics(
    pred_density: np.ndarray,
    pred_velocity: np.ndarray,
    true_density: np.ndarray,
    true_velocity: np.ndarray,
) -> dict[str, float]:
    """RMSE and R^2 of log10 density (dex) and of velocity (km/s), plus the velocity MAE.

    Arrays share one shape, e.g. (cores, n_bins, ny, nx), in physical units (cm^-3, km/s);
    every bin of every column counts once. Density is compared in log10 because it spans
    decades and the network predicts its logarithm. R^2 = 1 - SS_res / SS_tot about the mean
    of the truth, so 0 is "no better than the mean" and a flat profile can score below it.
    """
    log_pred = np.log10(np.asarray(pred_density, dtype=np.float64))
    log_true = np.log10(np.asarray(true_density, dtype=np.float64))
    v_pred = np.asarray(pred_velocity, dtype=np.float64)
    v_true = np.asarray(true_velocity, dtype=np.float64)
    if not log_pred.shape == log_true.shape == v_pred.shape == v_true.shape:
        raise ValueError(
            f"predictions and truths must share a shape, got {log_pred.shape}, "
            f"{v_pred.shape}, {log_true.shape}, {v_true.shape}"
        )
    return {
        "density_rmse_dex": _rmse(log_pred, log_true),
        "density_r2": r2_score(log_true, log_pred),
        "velocity_rmse_kms": _rmse(v_pred, v_true),
        "velocity_r2": r2_score(v_true, v_pred),
        "velocity_mae_kms": float(np.mean(np.abs(v_pred - v_true))),
    }


def _rmse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - true) ** 2)))
