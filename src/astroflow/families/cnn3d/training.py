"""cnn3d training: cube shards scaled with training statistics, the profile network and loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from astroflow.cubes.dataset import CubeDataset
from astroflow.cubes.params import PARAM_NAMES
from astroflow.cubes.scaling import fit_scaling
from astroflow.engine.family import Paths, SupervisedFamily
from astroflow.models.cnn3d import ProfileCNN3d, profile_loss


class Cnn3dTraining(SupervisedFamily):
    """Cube shards (:class:`~astroflow.cubes.dataset.CubeDataset`) scaled with statistics of
    the training shards, and the profile loss.

    The network predicts profiles, not parameters: the ``params`` of a cnn3d experiment only
    name the generating parameters that describe its embeddings (t-SNE colours, the KNN
    target), so training needs none and the workflow leaves them out of its settings.
    """

    items = "cubes"

    def check(self, cfg: Mapping[str, Any]) -> None:
        params = cfg.get("params", [])
        if isinstance(params, str):
            raise ValueError(f"experiment setting 'params' must be a list, got {params!r}")
        unknown = [p for p in params if p not in PARAM_NAMES]
        if unknown:
            raise ValueError(
                f"experiment setting 'params': {unknown} are not core parameters {PARAM_NAMES}"
            )

    def datasets(
        self, cfg: Mapping[str, Any], train_paths: Paths, val_paths: Paths
    ) -> tuple[CubeDataset, CubeDataset]:
        scaling = fit_scaling(train_paths)  # training shards only
        return CubeDataset(train_paths, scaling), CubeDataset(val_paths, scaling)

    def arch(self, cfg: Mapping[str, Any], train_set: CubeDataset) -> dict[str, Any]:
        return {
            "n_channels": train_set.config.n_channels,
            "n_bins": train_set.config.n_bins,
            "hidden": cfg["hidden"],
            "dropout": cfg["dropout"],
        }

    def networks(self, arch: Mapping[str, Any]) -> dict[str, nn.Module]:
        return {"model": ProfileCNN3d(**arch)}

    def model_meta(self, cfg: Mapping[str, Any], train_set: CubeDataset) -> dict[str, Any]:
        # The core configuration travels with the model: it defines the channels a real cube
        # is resampled onto and the profile bins of the predictions.
        return {
            "fields": [train_set.config.tracer],
            "params": [],  # profiles, no parameters
            "normalization": train_set.scaling.to_dict(),
            "core_config": train_set.config.to_dict(),
        }

    def loss(self, outputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        (profiles,) = outputs
        return profile_loss(profiles, target)

    def describe(self, cfg: Mapping[str, Any], train_set: CubeDataset) -> str:
        c = train_set.config
        return (
            f"{c.tracer} cubes of {c.n_channels} channels x {c.grid_size}^2 columns -> "
            f"{c.n_bins} density and velocity bins per column"
        )
