"""``superres.json``: the EMA generator on the held-out test volumes against the truth and
against trilinear and tricubic upsampling, per channel, with the time and peak memory of the
tiled inference. A third baseline, ``spectral``, is the spectral (FFT) interpolation of the
input in the networks' units (log density): a spectral-skip generator's skip path alone, which
shows what the network adds to it.

Per channel: P(k) of truth, output and the baselines (averaged over the test volumes) from
the fundamental to the high-resolution Nyquist frequency, r(k) of each with the truth, the
one-point PDFs, and the scores of :func:`~astroflow.families.srgan3d.validation.compare_channel`
with the small scales defined by the trilinear and tricubic baselines (the k above the
low-resolution Nyquist frequency where even the better of them holds less than half the true
power). ``done`` says
whether the issue's targets hold: median |P/P_true - 1| < 10% on those scales and r(k) >= 0.9
at every k up to the low-resolution Nyquist frequency.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from astroflow.evaluation.spectra3d import one_point_pdf
from astroflow.families.srgan3d.inference import superresolve, tricubic, trilinear
from astroflow.families.srgan3d.validation import compare_channel, contrast
from astroflow.io import write_json
from astroflow.memory import peak_rss_rise
from astroflow.modelfile import load_model
from astroflow.volumes.dataset import read_shards
from astroflow.volumes.resample import spectral_upsample
from astroflow.volumes.scaling import VolumeScaling
from astroflow.volumes.shards import is_density

log = logging.getLogger("astroflow.evaluate")

POWER_TOLERANCE = 0.10
R_THRESHOLD = 0.9


def evaluate_superres(
    model_path: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    tile: int,
    seed: int,
    threads: int | None = None,
    keep_resolved: bool = False,
) -> dict[str, Any]:
    """Write ``superres.json`` for the model at ``model_path`` on the volume shards;
    ``keep_resolved`` as in :func:`~astroflow.families.srgan3d.inference.superresolve`."""
    if threads:
        torch.set_num_threads(threads)
    generator, meta = load_model(model_path, "cpu")
    scaling = VolumeScaling.from_dict(meta["normalization"])
    shards = read_shards(shard_paths)
    channels = list(shards[0].channels)
    if channels != meta["fields"] or shards[0].factor != meta["factor"]:
        raise ValueError(
            f"{shard_paths[0]}: channels {channels} x{shards[0].factor} differ from the model's "
            f"{meta['fields']} x{meta['factor']} ({model_path})"
        )
    lr = np.concatenate([s.lr for s in shards])
    hr = np.concatenate([s.hr for s in shards])
    factor, box = shards[0].factor, shards[0].box_size
    scaled = scaling.forward(lr)

    outputs, seconds, peaks = [], [], []
    for i, volume in enumerate(scaled):
        start = time.perf_counter()
        result, peak = peak_rss_rise(
            lambda v=volume, i=i: superresolve(
                generator, v, tile=tile, seed=seed + i, keep_resolved=keep_resolved
            )
        )
        seconds.append(time.perf_counter() - start)
        peaks.append(peak)
        outputs.append(scaling.inverse(result))
    physical = {
        "truth": hr,
        "output": np.stack(outputs),
        "trilinear": np.stack([trilinear(v, factor) for v in lr]),
        "tricubic": np.stack([tricubic(v, factor) for v in lr]),
        "spectral": np.stack([scaling.inverse(spectral_upsample(v, factor)) for v in scaled]),
    }
    fields = {name: contrast(v, channels) for name, v in physical.items()}
    k_nyquist = np.pi * lr.shape[-1] / box
    report: dict[str, Any] = {}
    for c, name in enumerate(channels):
        channel = compare_channel(
            fields["truth"][:, c],
            {key: fields[key][:, c] for key in ("output", "trilinear", "tricubic", "spectral")},
            box,
            k_nyquist,
            reference=("trilinear", "tricubic"),
        )
        channel["pdf"] = one_point_pdf(
            {key: physical[key][:, c] for key in ("truth", "output", "trilinear")},
            log=is_density(name),
        )
        channel["unit"] = shards[0].units[c]
        scores = channel["scores"]["output"]
        error = scores["power_error_small_scales"]
        channel["done"] = {
            "power_within_10_percent": error is not None and error < POWER_TOLERANCE,
            "r_above_0p9_resolved": scores["r_min_resolved"] >= R_THRESHOLD,
        }
        report[name] = channel
    crop = meta["settings"]["crop"]
    result = {
        "channels": report,
        "box_size": box,
        "factor": factor,
        "k_fundamental": 2 * np.pi / box,
        "k_lr_nyquist": k_nyquist,
        "k_hr_nyquist": np.pi * hr.shape[-1] / box,
        "test_volumes": len(lr),
        "inference": {
            "tile_lr_voxels": min(tile, lr.shape[-1]),
            "volume_hr_voxels": hr.shape[-1],
            "training_crop_hr_voxels": crop * factor,
            "volume_over_crop": (hr.shape[-1] / (crop * factor)) ** 3,
            "seconds_per_volume": float(np.mean(seconds)),
            "peak_memory_rise_mb": float(np.max(peaks)),
            "threads": torch.get_num_threads(),
        },
        "done": all(all(channel["done"].values()) for channel in report.values()),
    }
    for name, channel in report.items():
        s = channel["scores"]
        log.info(
            "%s: small-scale |P/P_true - 1| output %s, trilinear %s, tricubic %s; min r(k<k_Ny,LR) "
            "output %.3f",
            name,
            s["output"]["power_error_small_scales"],
            s["trilinear"]["power_error_small_scales"],
            s["tricubic"]["power_error_small_scales"],
            s["output"]["r_min_resolved"],
        )
    write_json(output, result)
    return result
