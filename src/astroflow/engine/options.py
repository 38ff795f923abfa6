"""How a training run is executed, as opposed to what it trains.

The experiment settings define the model and its schedule; a change to one of them retrains
it, and a checkpoint written under other settings is not resumed. The options here only change
where and how fast the same training runs (resources, checkpoint cadence, precision, loader
workers), so they trigger no rerun and do not take part in the checkpoint's fingerprint.
This module imports no torch: the workflow reads :data:`RUNTIME_KEYS` while it is parsed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

RUNTIME_KEYS: tuple[str, ...] = (
    "gpus",
    "threads",
    "mem_mb",
    "runtime",
    "restart",
    "checkpoint_every_steps",
    "checkpoint_every_minutes",
    "compile",
    "num_workers",
    "precision",
)
"""Experiment keys that say how to run, not what to train (see the module docstring)."""

PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class RunOptions:
    """Execution options of one training run; every field has a safe default.

    ``checkpoint_dir``: where checkpoints go (None: no checkpoints, and SIGTERM/SIGUSR1 keep
    their default meaning). ``restart``: discard a checkpoint whose settings differ from the
    current ones instead of refusing to run; a checkpoint of the same settings is always
    resumed. ``checkpoint_every_steps`` / ``checkpoint_every_minutes``: save mid-epoch after
    that many optimizer steps / minutes (None: never); a checkpoint is also written at the end
    of every epoch. ``compile``: wrap the network in ``torch.compile``. ``precision``: autocast
    dtype, "auto" for the device's choice (:func:`astroflow.device.autocast_dtype`).
    ``num_workers``: DataLoader processes per rank (None: from ``threads`` and the device).
    ``threads``: CPU threads of this process (None: torch's default; the launcher shares a
    job's threads out among its ranks). ``device``: None/"auto",
    "cpu" or "cuda[:i]". ``log_every_steps``: one progress line per this many steps when the
    output is not a terminal. ``tensorboard_every_steps``: step-level TensorBoard scalars.
    """

    checkpoint_dir: Path | None = None
    restart: bool = False
    checkpoint_every_steps: int | None = None
    checkpoint_every_minutes: float | None = 10.0
    compile: bool = False
    precision: str = "auto"
    num_workers: int | None = None
    threads: int | None = None
    device: str | None = None
    log_every_steps: int = 100
    tensorboard_every_steps: int = 10

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        lowest = {
            "checkpoint_every_steps": 1,
            "num_workers": 0,
            "log_every_steps": 1,
            "tensorboard_every_steps": 1,
        }
        for name, low in lowest.items():
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < low):
                raise ValueError(f"option '{name}' must be an integer >= {low}, got {value!r}")
        minutes = self.checkpoint_every_minutes
        if minutes is not None and not minutes > 0:
            raise ValueError(f"option 'checkpoint_every_minutes' must be > 0, got {minutes!r}")
        if self.checkpoint_dir is not None:
            object.__setattr__(self, "checkpoint_dir", Path(self.checkpoint_dir))

    @classmethod
    def from_experiment(cls, experiment: Mapping[str, Any], **overrides: Any) -> RunOptions:
        """Options from an experiment entry of the workflow config (its runtime keys).

        ``overrides`` (checkpoint_dir, threads, device, ...) win over the entry; keys of the
        entry that are not options (model settings, gpus, mem_mb, runtime) are ignored.
        """
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in experiment.items() if k in names and k in RUNTIME_KEYS}
        values.update(overrides)
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """Plain-data form (for the request handed to torchrun workers)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.checkpoint_dir is not None:
            data["checkpoint_dir"] = os.fspath(self.checkpoint_dir)
        return data
