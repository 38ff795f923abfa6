"""cnn2d training: map shards, the moment network and its loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from astroflow.engine.family import Paths, SupervisedFamily
from astroflow.engine.monitor import prediction_image
from astroflow.maps.dataset import ShardDataset
from astroflow.models.cnn2d import MomentCNN2d, moment_loss


class Cnn2dTraining(SupervisedFamily):
    """Map shards (:class:`~astroflow.maps.dataset.ShardDataset`, standardized with
    train-split statistics when they were written) and the moment loss."""

    items = "maps"

    def check(self, cfg: Mapping[str, Any]) -> None:
        for key in ("fields", "params"):
            if isinstance(cfg.get(key), str) or not cfg.get(key):
                raise ValueError(
                    f"experiment setting '{key}' must be a non-empty list, got {cfg.get(key)!r}"
                )

    def datasets(
        self, cfg: Mapping[str, Any], train_paths: Paths, val_paths: Paths
    ) -> tuple[ShardDataset, ShardDataset]:
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

    def networks(self, arch: Mapping[str, Any]) -> dict[str, nn.Module]:
        return {"model": MomentCNN2d(**arch)}

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

    def input_names(self, cfg: Mapping[str, Any]) -> list[str]:
        return list(cfg["fields"])

    def validation_images(
        self, outputs: tuple[np.ndarray, ...], dataset: ShardDataset
    ) -> dict[str, np.ndarray]:
        mean = outputs[0]
        return {
            f"val_pred_vs_truth/{name}": prediction_image(dataset.targets[:, j], mean[:, j])
            for j, name in enumerate(dataset.params)
        }
