"""Classifier training: maps and their counterparts, a CNN and cross-entropy, and the
P(k)-and-moments baseline fitted on the same training maps and stored with the model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from astroflow.engine.family import Paths, SupervisedFamily
from astroflow.evaluation.classification import fit_spectral_baseline, spectral_features
from astroflow.families.classifier.data import BOX_UNITS, ClassDataset, class_dataset
from astroflow.families.classifier.networks import build_classifier


class ClassifierTraining(SupervisedFamily):
    """Cross-entropy of the CNN's logits; the validation loss is that of the whole set."""

    items = "maps"

    def datasets(
        self, cfg: Mapping[str, Any], train_paths: Paths, val_paths: Paths
    ) -> tuple[ClassDataset, ClassDataset]:
        return class_dataset(train_paths, cfg), class_dataset(val_paths, cfg)

    def arch(self, cfg: Mapping[str, Any], train_set: ClassDataset) -> dict[str, Any]:
        return {
            "arch": cfg["arch"],
            "in_channels": len(cfg["fields"]),
            "map_size": train_set.map_size,
            "layer_param": cfg["layer_param"],
            "dropout": cfg["dropout"],
            "n_classes": len(train_set.class_names),
        }

    def networks(self, arch: Mapping[str, Any]) -> dict[str, nn.Module]:
        return {"model": build_classifier(**arch)}

    def loss(self, outputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        (logits,) = outputs
        return F.cross_entropy(logits.float(), target.long())

    def model_meta(self, cfg: Mapping[str, Any], train_set: ClassDataset) -> dict[str, Any]:
        """Fields, class names, normalization, and the baseline fitted on the training maps
        (plain numbers: the model file holds it, and inference needs no training data)."""
        features = spectral_features(train_set.maps, BOX_UNITS)
        return {
            "fields": list(cfg["fields"]),
            "params": [],
            "class_names": list(train_set.class_names),
            "normalization": {
                "mean": train_set.field_mean.tolist(),
                "std": train_set.field_std.tolist(),
            },
            "baseline": fit_spectral_baseline(features, train_set.targets, cfg["seed"]),
        }

    def describe(self, cfg: Mapping[str, Any], train_set: ClassDataset) -> str:
        return f"{cfg['arch']} telling {' / '.join(train_set.class_names)} maps of {cfg['fields']}"

    def input_names(self, cfg: Mapping[str, Any]) -> list[str]:
        return list(cfg["fields"])
