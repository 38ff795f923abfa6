"""Model families: what each one trains on, what it predicts, and how it is scored.

The training loop (:func:`astroflow.train.train_experiment`), inference and embeddings are the
same for every model; a :class:`~astroflow.tasks.base.Task` supplies what differs: the datasets
of its shards, the network's constructor arguments, the loss, the normalization stored in the
model file, and the prediction and embedding products. The registry maps an experiment's
``model`` to its task and its dataset family; it imports a task's module only when the task is
used, so the workflow can read :data:`DATASETS` while it is parsed without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from astroflow.tasks.base import Task

TASKS: dict[str, str] = {
    "cnn2d": "astroflow.tasks.maps:MapTask",
    "cnn3d": "astroflow.tasks.cubes:CubeTask",
}
"""Model name (the experiment's ``model`` setting) -> ``module:class`` of its task."""

DATASETS: dict[str, str] = {"cnn2d": "maps", "cnn3d": "cubes"}
"""Model name -> the data it reads: ``maps`` (CMD map shards) or ``cubes`` (PPV cube shards)."""


def get_task(model: str) -> Task:
    """The task of the model family registered as ``model``."""
    if model not in TASKS:
        raise ValueError(f"unknown model {model!r}; available: {', '.join(sorted(TASKS))}")
    module_name, class_name = TASKS[model].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
