"""Checkpoints: the full training state, saved atomically, found again, and checked on resume.

A checkpoint directory holds one file per save (``step-000001234.pt``, written to a temporary
name, flushed to disk, then renamed), a ``last`` pointer naming the newest file (replaced
atomically) and the previous save as a fallback. A file holds only tensors and plain data, so
it loads with ``torch.load(weights_only=True)``.

A checkpoint records the *fingerprint* of its run: the model-defining settings (everything but
the runtime keys of :mod:`astroflow.engine.options`) and the size of the training set, which
fixes the steps per epoch. Resuming under another fingerprint would bend the learning-rate
schedule or load weights into another network, so it is refused unless the run asks to
restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from astroflow.engine.options import RUNTIME_KEYS
from astroflow.io import atomic_path

if TYPE_CHECKING:
    from astroflow.engine.family import Parts

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT_VERSION = 2
POINTER = "last"
KEEP = 2
"""Checkpoint files kept: the newest and one fallback in case the newest is unreadable."""

_NAME = re.compile(r"^step-(\d+)\.pt$")
EVENT_COLUMNS = ("step", "walltime", "loss", "lr", "grad_norm", "samples_per_s")
"""First columns of :attr:`TrainState.events`, the step-level TensorBoard scalars; the
family's further losses (:attr:`~astroflow.engine.family.TrainingFamily.loss_names`) follow."""


class CheckpointMismatch(RuntimeError):
    """A checkpoint was written under other model-defining settings than the current ones."""


@dataclass
class TrainState:
    """Everything that changes during training: what a checkpoint saves and restores.

    ``parts`` holds the networks, optimizers, schedulers, loss scalers and EMA copies of the
    family. ``epoch`` counts completed epochs and ``step`` training steps (the position inside
    the current epoch is ``step - epoch * steps_per_epoch``); ``epoch_loss`` is the sum of the
    batch losses of the current epoch so far (a float64 tensor on the training device, so
    adding to it never waits for the device); ``best_weights`` is a CPU copy of the state dict
    of the product network (what ``model.pt`` holds) with the lowest validation loss;
    ``history`` holds one dict per finished epoch (the CSV rows) and ``events`` the step-level
    scalars (:data:`EVENT_COLUMNS`, then the family's further losses), so that a resumed run
    can rebuild its logs; ``elapsed_s`` is the training time of earlier attempts (see
    :meth:`elapsed`) and ``resumed_at`` the steps at which attempts resumed.
    """

    parts: Parts
    epoch_loss: torch.Tensor
    n_event_columns: int = len(EVENT_COLUMNS)
    epoch: int = 0
    step: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    events: list[tuple[float, ...]] = field(default_factory=list)
    elapsed_s: float = 0.0
    resumed_at: list[int] = field(default_factory=list)
    attempt_start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Training time so far, over all attempts, in seconds."""
        return self.elapsed_s + time.perf_counter() - self.attempt_start

    def to_payload(self, fingerprint: Mapping[str, Any], rng_states: list[dict]) -> dict:
        """Checkpoint content; ``rng_states`` holds one captured RNG state per rank."""
        return {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "fingerprint": dict(fingerprint),
            "fingerprint_hash": fingerprint_hash(fingerprint),
            "world_size": len(rng_states),
            "rng": rng_states,
            "parts": self.parts.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "epoch_loss": float(self.epoch_loss),
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "best_weights": self.best_weights,
            "history": self.history,
            "events": torch.tensor(self.events, dtype=torch.float64).reshape(
                -1, self.n_event_columns
            ),
            "elapsed_s": self.elapsed(),
            "resumed_at": self.resumed_at,
        }

    def load_payload(self, payload: Mapping[str, Any]) -> None:
        """Restore everything but the RNG states (which are per rank, see the caller)."""
        self.parts.load_state_dict(payload["parts"])
        self.epoch, self.step = payload["epoch"], payload["step"]
        self.epoch_loss.fill_(payload["epoch_loss"])
        self.best_val_loss, self.best_epoch = payload["best_val_loss"], payload["best_epoch"]
        self.best_weights = payload["best_weights"]
        self.history = list(payload["history"])
        self.events = [tuple(row) for row in payload["events"].tolist()]
        self.elapsed_s, self.attempt_start = payload["elapsed_s"], time.perf_counter()
        self.resumed_at = [*payload["resumed_at"], self.step]


def fingerprint(settings: Mapping[str, Any], **derived: Any) -> dict[str, Any]:
    """What a resumed run must share with its checkpoint: model-defining settings and
    ``derived`` facts of the data (the number of training maps, say)."""
    defining = {k: v for k, v in settings.items() if k not in RUNTIME_KEYS}
    return json.loads(json.dumps({"settings": defining, **derived}, sort_keys=True))


def fingerprint_hash(fp: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable ``key: old -> new`` lines between two fingerprints."""
    flat_old, flat_new = _flatten(old), _flatten(new)
    return [
        f"{key}: {flat_old.get(key, '(unset)')!r} -> {flat_new.get(key, '(unset)')!r}"
        for key in sorted(flat_old.keys() | flat_new.keys())
        if flat_old.get(key) != flat_new.get(key)
    ]


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


class CheckpointStore:
    """The checkpoint files of one run in ``directory`` (created on first save)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def save(self, payload: Mapping[str, Any]) -> Path:
        """Write ``payload`` as the checkpoint of its step, point ``last`` at it, prune."""
        path = self.directory / f"step-{payload['step']:09d}.pt"
        with atomic_path(path) as tmp, open(tmp, "wb") as stream:
            torch.save(dict(payload), stream)
            stream.flush()
            # Durable before the rename: after a node crash the pointer must not name an
            # empty file (rename is atomic, but the data may still sit in the page cache).
            os.fsync(stream.fileno())
        with atomic_path(self.directory / POINTER) as tmp:
            tmp.write_text(path.name + "\n")
        for old in self._files()[:-KEEP]:
            old.unlink(missing_ok=True)
        return path

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest readable checkpoint and its content, or None if there is none.

        The file named by ``last`` comes first; if it cannot be read, older files are tried,
        newest first, with a warning (a save interrupted between file and pointer leaves the
        pointer on the previous, complete file anyway).
        """
        candidates = self._files()[::-1]
        pointer = self.directory / POINTER
        if pointer.is_file():
            named = self.directory / pointer.read_text().strip()
            candidates = [named, *(p for p in candidates if p != named)]
        for path in candidates:
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # torch raises several types for damaged files
                log.warning("checkpoint %s is unreadable (%s); trying an older one", path, err)
                continue
            if payload.get("format_version") != CHECKPOINT_FORMAT_VERSION:
                log.warning("checkpoint %s has another format version; ignored", path)
                continue
            return path, payload
        return None

    def clear(self) -> None:
        """Remove the checkpoint files, the pointer and, if then empty, the directory."""
        for path in self._files():
            path.unlink(missing_ok=True)
        (self.directory / POINTER).unlink(missing_ok=True)
        if self.directory.is_dir() and not any(self.directory.iterdir()):
            self.directory.rmdir()

    def _files(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m[1]), p) for p in self.directory.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]


def check_resumable(
    path: Path, payload: Mapping[str, Any], current: Mapping[str, Any], directory: Path
) -> None:
    """Refuse a checkpoint whose fingerprint differs from the current one.

    The :class:`CheckpointMismatch` names the differing keys and the ways to start over.
    """
    if payload["fingerprint_hash"] == fingerprint_hash(current):
        return
    changes = differences(payload["fingerprint"], current)
    raise CheckpointMismatch(
        f"{path} belongs to an unfinished run with other settings ("
        + "; ".join(changes)
        + "). Resuming it would change the model or its learning-rate schedule. To start "
        f"over, set 'restart: true' for this experiment in the config (or delete {directory}); "
        "to continue that run, put the old settings back."
    )
