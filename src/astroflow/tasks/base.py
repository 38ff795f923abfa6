"""The interface a model family implements to train, predict and embed through the engine."""

from __future__ import annotations

import abc
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

Paths = Sequence[str | os.PathLike[str]]


class Task(abc.ABC):
    """What differs between model families; everything else (the loop, checkpoints, resume,
    signals, DDP, the monitor) is shared.

    A training dataset answers ``dataset[list_of_keys]`` with a
    :class:`~astroflow.maps.dataset.Batch` (keys are indices or ``(index, d4_element)`` pairs
    planned by the :class:`~astroflow.engine.sampler.EpochPlan`), has ``len``, ``preload()``
    and ``targets`` (all scaled targets, in order), so validation scores the whole set at once.
    """

    items: str = "samples"
    """What one training item is, for log lines (maps, cubes)."""

    required_settings: tuple[str, ...] = ()
    """Experiment settings this family needs beyond the common ones."""

    predictions: str = ""
    """``module:function`` that writes predictions and metrics, called as
    ``fn(model, meta, model_path, shard_paths, out_h5, out_metrics, *, batch_size,
    num_workers, device)`` and returning the metrics (see :func:`astroflow.infer.predict`)."""

    embeddings: str = ""
    """``module:function`` that writes one feature vector per item with its generating
    parameters, called as ``fn(model, meta, model_path, shard_paths, out_h5, *, batch_size,
    num_workers, device)`` (see :func:`astroflow.embed.embed`)."""

    def check(self, cfg: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Raise ValueError naming a setting this family cannot use."""

    @abc.abstractmethod
    def datasets(
        self, cfg: Mapping[str, Any], train_paths: Paths, val_paths: Paths
    ) -> tuple[Dataset, Dataset]:
        """Training and validation sets, scaled with statistics of the training shards only."""

    @abc.abstractmethod
    def arch(self, cfg: Mapping[str, Any], train_set: Dataset) -> dict[str, Any]:
        """Constructor keyword arguments of the network (stored in the model file)."""

    @abc.abstractmethod
    def model_meta(self, cfg: Mapping[str, Any], train_set: Dataset) -> dict[str, Any]:
        """Model-file entries that inference needs: ``fields``, ``params``, ``normalization``."""

    @abc.abstractmethod
    def loss(self, outputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of the network's outputs for a whole (global) batch."""

    @abc.abstractmethod
    def describe(self, cfg: Mapping[str, Any], train_set: Dataset) -> str:
        """What is learned from what, for the first log line of a run."""

    def monitor_names(self, cfg: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """Names of the input channels and of the targets that TensorBoard shows as images."""
        return [], []

    def monitor_columns(
        self, outputs: tuple[np.ndarray, ...], dataset: Dataset
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted and true values (n, K) in [0, 1] of the ``monitor_names`` targets."""
        empty = np.empty((len(dataset), 0), np.float32)
        return empty, empty

    def product_writer(self, kind: str) -> Callable[..., Any]:
        """The function named by ``predictions`` or ``embeddings``, imported only when used
        (the product modules import the training code, which imports this package)."""
        module_name, function_name = getattr(self, kind).split(":")
        return getattr(importlib.import_module(module_name), function_name)
