"""cnn3d products on cube shards and on real FITS cubes: profiles, metrics, embeddings.

Products of :func:`predict_profiles`: ``predictions.h5`` with ``density`` and ``velocity``
(n, nb, ny, nx) predicted by the network, ``true_density``/``true_velocity`` and
``baseline_density``/``baseline_velocity`` (the flat-profile baseline of
:mod:`astroflow.cubes.baseline`) of the same shape, in cm^-3 and km/s, ``params`` (n, 13),
``core_id`` (n,), ``bin_centers`` (nb,) pc and ``channels`` (nv,) km/s; ``metrics.json`` with
``n_cubes`` and the :func:`~astroflow.cubes.baseline.profile_metrics` of the ``network`` and of
the ``baseline``, and their ``ratio`` (network / baseline, below 1 where the network wins).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from astropy.wcs.utils import proj_plane_pixel_scales
from torch import nn

from astroflow.cubes.baseline import flat_profile_baseline, profile_metrics
from astroflow.cubes.config import CoreConfig
from astroflow.cubes.dataset import CubeDataset
from astroflow.cubes.emission import check_in_window, systemic_velocity
from astroflow.cubes.fits import read_ppv_fits, resample_ppv, write_profile_fits
from astroflow.cubes.params import PARAM_NAMES, PARAM_UNITS
from astroflow.cubes.scaling import CubeScaling, scale_cubes, unscale_profiles
from astroflow.cubes.shards import CubeShard, read_cube_shard
from astroflow.device import select_device
from astroflow.embed import write_embeddings
from astroflow.evaluation.outputs import dataset_outputs
from astroflow.io import atomic_path, write_json
from astroflow.modelfile import load_model

log = logging.getLogger(__name__)

PIXEL_SCALE_TOLERANCE = 0.25
"""Relative pixel-scale difference from the training cubes above which a warning is logged."""

_RATIO_KEYS = ("density_rmse_dex", "velocity_rmse_kms", "velocity_mae_kms")


def open_for_model(
    shard_paths: Sequence[str | os.PathLike[str]],
    meta: Mapping[str, Any],
    model_path: str | os.PathLike[str],
    shards: Sequence[CubeShard] | None = None,
) -> CubeDataset:
    """Cube shards scaled as the model was trained, checked against its channels and bins.

    Other channels or profile bins than the training ones are an error; another core
    configuration with the same channels (a robustness test on other cores) is only logged.
    ``shards`` are the files' contents when the caller has read them already.
    """
    trained = CoreConfig.from_mapping(meta["core_config"])
    scaling = CubeScaling.from_mapping(meta["normalization"])
    dataset = CubeDataset(shard_paths, scaling, shards)
    found = dataset.config
    if not np.allclose(found.channels_kms, trained.channels_kms) or found.n_bins != trained.n_bins:
        raise ValueError(
            f"{dataset.paths[0]}: {found.n_channels} channels of {found.channel_width_kms} km/s "
            f"and {found.n_bins} bins, but model {model_path} was trained on "
            f"{trained.n_channels} of {trained.channel_width_kms} km/s and {trained.n_bins} "
            "(key 'core_config')"
        )
    if found != trained:
        log.warning(
            "shards %s were synthesised with another core configuration than model %s",
            dataset.paths[0],
            model_path,
        )
    return dataset


def predict_profiles(
    model: nn.Module,
    meta: Mapping[str, Any],
    model_path: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    out_h5: str | os.PathLike[str],
    out_metrics: str | os.PathLike[str],
    *,
    batch_size: int,
    num_workers: int,
    device: torch.device,
) -> dict[str, Any]:
    """Profiles of every column of every cube, the baseline's, and the metrics of both."""
    shards = [read_cube_shard(path) for path in shard_paths]  # unscaled: truth and baseline
    dataset = open_for_model(shard_paths, meta, model_path, shards)
    (scaled,) = dataset_outputs(
        model, dataset, batch_size=batch_size, num_workers=num_workers, device=device
    )
    density, velocity = unscale_profiles(scaled, dataset.scaling)
    true_density = np.concatenate([s.density for s in shards])
    true_velocity = np.concatenate([s.velocity for s in shards])
    base_density, base_velocity = flat_profile_baseline(
        np.concatenate([s.cubes for s in shards]), dataset.config
    )
    network = profile_metrics(density, velocity, true_density, true_velocity)
    baseline = profile_metrics(base_density, base_velocity, true_density, true_velocity)
    metrics = {
        "n_cubes": len(dataset),
        "network": network,
        "baseline": baseline,
        "ratio": {key: network[key] / baseline[key] for key in _RATIO_KEYS},
    }

    arrays = {
        "density": density,
        "velocity": velocity,
        "true_density": true_density,
        "true_velocity": true_velocity,
        "baseline_density": base_density,
        "baseline_velocity": base_velocity,
    }
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as h5:
        for name, values in arrays.items():
            dset = h5.create_dataset(name, data=values.astype(np.float32))
            dset.attrs["units"] = "cm-3" if name.endswith("density") else "km/s"
        h5.create_dataset("params", data=dataset.params)
        h5.create_dataset("core_id", data=dataset.core_ids)
        h5.create_dataset("bin_centers", data=dataset.config.bin_centers_pc).attrs["units"] = "pc"
        h5.create_dataset("channels", data=dataset.config.channels_kms).attrs["units"] = "km/s"
        h5.attrs["param_names"] = list(PARAM_NAMES)
        h5.attrs["param_units"] = list(PARAM_UNITS)
        h5.attrs["axes"] = "profiles (core, z, y, x), z away from the observer"
        h5.attrs["model"] = Path(model_path).name
    write_json(out_metrics, metrics)
    for name, scores in (("network", network), ("baseline", baseline)):
        log.info(
            "%s: log density rmse %.3f dex (R^2 %.3f), velocity rmse %.3f km/s (R^2 %.3f)",
            name,
            scores["density_rmse_dex"],
            scores["density_r2"],
            scores["velocity_rmse_kms"],
            scores["velocity_r2"],
        )
    return metrics


def embed_cubes(
    model: nn.Module,
    meta: Mapping[str, Any],
    model_path: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    out_h5: str | os.PathLike[str],
    *,
    batch_size: int,
    num_workers: int,
    device: torch.device,
) -> None:
    """One embedding per cube (column features averaged over the map) with its parameters.

    The layout is that of map embeddings (:mod:`astroflow.embed`), one row per cube:
    ``sim_id`` is the core's index (every core is its own simulation) and ``params_raw`` its
    13 generating parameters, so t-SNE and clustering read both families alike.
    """
    dataset = open_for_model(shard_paths, meta, model_path)
    (features,) = dataset_outputs(
        model,
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        method="features",
    )
    write_embeddings(
        out_h5,
        features,
        sim_id=dataset.core_ids,
        map_index=dataset.core_ids,
        params_raw=dataset.params,
        param_names=PARAM_NAMES,
        param_units=PARAM_UNITS,
        fields=meta["fields"],
        model_path=model_path,
    )
    log.info("embedded %d cubes into %d dimensions", *features.shape)


def predict_fits(
    model_path: str | os.PathLike[str],
    cube_path: str | os.PathLike[str],
    out_density: str | os.PathLike[str],
    out_velocity: str | os.PathLike[str],
    *,
    velocity_offset_kms: float = 0.0,
    center_on_emission: bool = False,
    threads: int | None = None,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Density (cm^-3) and velocity (km/s) profile cubes (nb, ny, nx) of a FITS PPV cube.

    The cube's spectral axis (frequency or velocity, any unit) is converted to radio velocity,
    shifted by ``velocity_offset_kms`` (bring the source's systemic velocity to the training
    window) and resampled onto the model's training channels; channels outside the observed
    band count as empty. Predicted velocities are shifted back, so they are in the cube's own
    frame. With ``center_on_emission`` the offset is instead the systemic velocity estimated
    from the emission (:mod:`astroflow.cubes.emission`) less the centre of the training
    systemic velocities. A cube without emission, all blank, or whose emission lies mostly
    outside the training channels is refused. Both FITS files keep the cube's sky WCS and have
    a line-of-sight depth axis in pc; blanked columns are NaN. The network assumes the
    training pixel scale and beam: a cube whose pixels differ by more than 25 % is predicted
    with a warning in the log, as is a cube narrower than the network's receptive field.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    model, meta = load_model(model_path, select_device(device))
    if "core_config" not in meta:
        raise ValueError(f"{model_path}: a {meta['model']} model, not a cube model (cnn3d)")
    config = CoreConfig.from_mapping(meta["core_config"])
    scaling = CubeScaling.from_mapping(meta["normalization"])
    ppv = read_ppv_fits(cube_path)
    if center_on_emission:
        velocity_offset_kms = systemic_velocity(ppv, cube_path) - float(
            np.mean(config.systemic_velocity_kms)
        )
        log.info("%s: centred on the emission, offset %.3f km/s", cube_path, velocity_offset_kms)
    check_in_window(ppv, cube_path, config.channels_kms, velocity_offset_kms)
    cube = resample_ppv(
        ppv, cube_path, config.channels_kms, velocity_offset_kms=velocity_offset_kms, fill_value=0.0
    )
    _check_pixel_scale(cube_path, ppv.celestial, config)
    _check_receptive_field(cube_path, cube.shape[1:], model)
    x = torch.from_numpy(scale_cubes(cube, scaling))[None]
    device_of_model = next(model.parameters()).device
    with torch.no_grad():
        scaled = model(x.to(device_of_model)).float().cpu().numpy()[0]
    density, velocity = unscale_profiles(scaled, scaling)
    velocity = velocity + np.float32(velocity_offset_kms)
    cards = {
        "ASTROFLOW MODEL": Path(model_path).parent.name or Path(model_path).name,
        "ASTROFLOW INPUT": Path(cube_path).name,
        "ASTROFLOW VOFFSET": float(velocity_offset_kms),
    }
    for path, values, quantity in (
        (out_density, density, "density"),
        (out_velocity, velocity, "velocity"),
    ):
        write_profile_fits(
            path,
            values,
            ppv.celestial,
            config.bin_centers_pc,
            quantity,
            valid=ppv.valid,
            cards=cards,
        )
    log.info(
        "%s: %d x %d columns, %d profile bins; median over columns of the mean density %.3g cm^-3",
        cube_path,
        *cube.shape[1:],
        config.n_bins,
        float(np.median(density.mean(axis=0)[ppv.valid])) if ppv.valid.any() else math.nan,
    )
    return density, velocity


def _check_receptive_field(
    path: str | os.PathLike[str], shape: tuple[int, ...], model: nn.Module
) -> None:
    # Columns nearer the edge than the receptive field see zero padding instead of neighbours.
    width = 2 * getattr(model, "radius", 0) + 1
    if min(shape) < width:
        log.warning(
            "%s: %d x %d columns, fewer than the network's receptive field of %d x %d: every "
            "column sees the zero padding beyond the edge, so its profiles differ from those "
            "of the same column in a larger cube",
            path,
            *shape,
            width,
            width,
        )


def _check_pixel_scale(path: str | os.PathLike[str], celestial: Any, config: CoreConfig) -> None:
    pixel_deg = float(np.mean(proj_plane_pixel_scales(celestial)))
    trained_deg = math.degrees(config.voxel_pc / config.distance_pc)
    if abs(pixel_deg / trained_deg - 1.0) > PIXEL_SCALE_TOLERANCE:
        log.warning(
            "%s: pixels of %.3g arcsec, the model was trained on %.3g arcsec (%.4g pc at %g pc); "
            "profiles of a cube at another scale are extrapolations",
            path,
            pixel_deg * 3600,
            trained_deg * 3600,
            config.voxel_pc,
            config.distance_pc,
        )
