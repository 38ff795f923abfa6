"""Predict the test shards of an experiment with its trained model, whatever its family.

The model file says which family it is (``model``), and the family writes the products
(cnn2d: :mod:`astroflow.families.cnn2d.products`; cnn3d:
:mod:`astroflow.families.cnn3d.products`). Nothing here trains: the network is rebuilt from
the model file (:mod:`astroflow.modelfile`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from astroflow.device import select_device
from astroflow.families import get_family
from astroflow.modelfile import load_model


def predict(
    model_path: str | os.PathLike[str],
    shard_paths: Sequence[str | os.PathLike[str]],
    out_h5: str | os.PathLike[str],
    out_metrics: str | os.PathLike[str],
    batch_size: int = 64,
    *,
    num_workers: int = 0,
    threads: int | None = None,
    device: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Predict every item of ``shard_paths``; write ``out_h5`` and ``out_metrics``.

    ``settings``: the experiment's, which the model file must have been trained with.
    Returns the metrics dictionary written to ``out_metrics``.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    device = select_device(device)
    model, meta = load_model(model_path, device, settings=settings)
    return get_family(meta["model"]).predict(
        model,
        meta,
        model_path,
        shard_paths,
        out_h5,
        out_metrics,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
    )
