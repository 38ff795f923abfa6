"""Network architectures by name; each module holds one architecture and nothing about files.

The registry maps a config name to ``module:class`` and imports the module only when a model
is built, so importing :mod:`astroflow.models` (for :data:`MODELS`, say, while the workflow is
parsed) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

MODELS: dict[str, str] = {
    "cnn2d": "astroflow.models.cnn2d:MomentCNN2d",
    "cnn3d": "astroflow.models.cnn3d:ProfileCNN3d",
}
"""Model name (the experiment's ``model`` setting) -> ``module:class`` that builds it."""


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the architecture registered as ``name`` with its constructor ``kwargs``.

    Saved models store ``name`` and ``kwargs`` instead of pickled code, so a model file is
    rebuilt from plain data and loads with ``torch.load(weights_only=True)``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    module_name, class_name = MODELS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)(**kwargs)
