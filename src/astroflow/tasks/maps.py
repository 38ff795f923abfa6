"""cnn2d: maps of CMD fields in, posterior mean and std of simulation parameters out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from astroflow.maps.dataset import ShardDataset
from astroflow.models.cnn2d import moment_loss
from astroflow.tasks.base import Paths, Task


class MapTask(Task):
    """Map shards (:class:`~astroflow.maps.dataset.ShardDataset`), the moment loss, and
    predictions and embeddings per map (:mod:`astroflow.infer`, :mod:`astroflow.embed`)."""

    items = "maps"
    predictions = "astroflow.infer:predict_maps"
    embeddings = "astroflow.embed:embed_maps"
    required_settings = ("fields", "params")

    def check(self, cfg: Mapping[str, Any]) -> None:
        for key in ("fields", "params"):
            if isinstance(cfg[key], str) or not cfg[key]:
                raise ValueError(
                    f"experiment setting '{key}' must be a non-empty list, got {cfg[key]!r}"
                )

    def datasets(
        self, cfg: Mapping[str, Any], train_paths: Paths, val_paths: Paths
    ) -> tuple[ShardDataset, ShardDataset]:
        # The shards are standardized with train-split statistics when they are written.
        return (
            ShardDataset(train_paths, cfg["fields"], cfg["params"]),
            ShardDataset(val_paths, cfg["fields"], cfg["params"]),
        )

    def arch(self, cfg: Mapping[str, Any], train_set: ShardDataset) -> dict[str, Any]:
        return {
            "in_channels": len(cfg["fields"]),
            "n_params": len(cfg["params"]),
            "map_size": train_set.map_size,
            "hidden": cfg["hidden"],
            "dropout": cfg["dropout"],
        }

    def model_meta(self, cfg: Mapping[str, Any], train_set: ShardDataset) -> dict[str, Any]:
        return {
            "fields": list(cfg["fields"]),
            "params": list(cfg["params"]),
            "normalization": {
                "mean": train_set.field_mean.tolist(),
                "std": train_set.field_std.tolist(),
            },
        }

    def loss(self, outputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        mean, std = outputs
        return moment_loss(mean, std, target)

    def describe(self, cfg: Mapping[str, Any], train_set: ShardDataset) -> str:
        return f"fields {cfg['fields']}, params {cfg['params']}"

    def monitor_names(self, cfg: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        return list(cfg["fields"]), list(cfg["params"])

    def monitor_columns(
        self, outputs: tuple[np.ndarray, ...], dataset: ShardDataset
    ) -> tuple[np.ndarray, np.ndarray]:
        return outputs[0], dataset.targets
