"""Train a network on shards: one loop, read top to bottom in :func:`train_experiment`.

Everything around the loop is a small named helper: seeding, data loaders, device and
precision (:mod:`astroflow.device`), the per-epoch record (CSV, TensorBoard, log line) and the
model file. Everything that changes while training lives in one :class:`TrainState`, which is
what a checkpoint will save and restore.

Products: ``model.pt`` (best validation loss; a plain dict of tensors and builtins, loadable
with ``torch.load(weights_only=True)``, see :func:`save_model`), ``train_log.csv`` (one row
per epoch) and TensorBoard event files in a directory.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from astroflow.data.dataset import ShardDataset
from astroflow.device import autocast, prepare_model, select_device, to_device
from astroflow.io import atomic_path
from astroflow.models import build_model
from astroflow.models.cnn2d import moment_loss

log = logging.getLogger(__name__)

MODEL_FORMAT_VERSION = 1
REQUIRED_SETTINGS = (
    "model",
    "fields",
    "params",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "hidden",
    "dropout",
    "seed",
)
LOG_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "lr", "samples_per_s", "elapsed_s")
_MODEL_KEYS = ("format_version", "model", "arch", "state_dict", "fields", "params", "settings")


class ModelFileError(ValueError):
    """A model file cannot be used; the message names the file and the missing or bad key."""


@dataclass
class TrainState:
    """Everything that changes during training (the content of a future checkpoint).

    ``epoch`` counts completed epochs and ``step`` optimizer steps; ``best_weights`` is a CPU
    copy of the state dict with the lowest validation loss so far.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    epoch: int = 0
    step: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)


def train_experiment(
    settings: Mapping[str, Any],
    train_paths: Sequence[str | os.PathLike[str]],
    val_paths: Sequence[str | os.PathLike[str]],
    out_model: str | os.PathLike[str],
    out_log: str | os.PathLike[str],
    tensorboard_dir: str | os.PathLike[str],
    *,
    num_workers: int | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> dict[str, float]:
    """Train the experiment described by ``settings`` and write its model and logs.

    ``settings`` is one experiment of the workflow config: ``model``, ``fields``, ``params``,
    ``epochs``, ``batch_size``, ``lr`` (peak of the one-cycle schedule), ``weight_decay``,
    ``hidden``, ``dropout``, ``seed``; other keys (resources, say) are stored in the model file
    untouched. ``num_workers`` DataLoader processes (default: ``settings["num_workers"]`` or 0)
    read shards; ``threads`` caps torch's intra-op threads (a cluster job must not use every
    core of the node); ``device`` is ``None``/"auto" (CUDA if available), "cpu" or "cuda[:i]".

    Returns a summary: best_epoch, best_val_loss, samples_per_s (training throughput of the
    last epoch), elapsed_s.
    """
    cfg = check_settings(settings)
    if threads is not None:
        torch.set_num_threads(threads)
    seed_everything(cfg["seed"])
    device = select_device(device)
    workers = int(cfg.get("num_workers", 0) if num_workers is None else num_workers)

    train_set = ShardDataset(train_paths, cfg["fields"], cfg["params"], augment=True)
    val_set = ShardDataset(val_paths, cfg["fields"], cfg["params"])
    train_loader = make_loader(train_set, cfg["batch_size"], cfg["seed"], workers, device, True)
    val_loader = make_loader(val_set, cfg["batch_size"], cfg["seed"], workers, device, False)

    arch = {
        "in_channels": len(cfg["fields"]),
        "n_params": len(cfg["params"]),
        "map_size": train_set.map_size,
        "hidden": cfg["hidden"],
        "dropout": cfg["dropout"],
    }
    model = prepare_model(build_model(cfg["model"], **arch), device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"]
    )
    # One cycle: warm up over the first 30% of the steps, then anneal to ~0; robust for the
    # short runs of a workflow and free of a separately tuned warm-up.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg["lr"], total_steps=cfg["epochs"] * len(train_loader)
    )
    state = TrainState(model, optimizer, scheduler)
    log.info(
        "training %s on %d maps (%d validation), fields %s, params %s, device %s, %d workers",
        cfg["model"],
        len(train_set),
        len(val_set),
        cfg["fields"],
        cfg["params"],
        device,
        workers,
    )

    start = time.perf_counter()
    with EpochRecorder(out_log, tensorboard_dir, cfg["epochs"]) as recorder:
        while state.epoch < cfg["epochs"]:
            epoch_start = time.perf_counter()
            train_loss, n_samples = train_one_epoch(state, train_loader, device, recorder)
            samples_per_s = n_samples / (time.perf_counter() - epoch_start)
            val_loss = validation_loss(model, val_loader, val_set, device)
            state.epoch += 1
            if not math.isfinite(train_loss):
                raise FloatingPointError(
                    f"training diverged: loss {train_loss} in epoch {state.epoch}"
                )
            if val_loss < state.best_val_loss:
                state.best_val_loss, state.best_epoch = val_loss, state.epoch
                state.best_weights = cpu_state_dict(model)
            recorder.record(state, train_loss, val_loss, samples_per_s, time.perf_counter() - start)

    if state.best_weights is None:
        raise FloatingPointError(f"validation loss was never finite in {state.epoch} epochs")
    meta = {
        "model": cfg["model"],
        "arch": arch,
        "fields": list(cfg["fields"]),
        "params": list(cfg["params"]),
        "settings": cfg,
        "normalization": {
            "mean": train_set.field_mean.tolist(),
            "std": train_set.field_std.tolist(),
        },
        "best_epoch": state.best_epoch,
        "best_val_loss": state.best_val_loss,
    }
    save_model(out_model, state.best_weights, meta)
    log.info("best validation loss %.4f in epoch %d", state.best_val_loss, state.best_epoch)
    return {
        "best_epoch": state.best_epoch,
        "best_val_loss": state.best_val_loss,
        "samples_per_s": state.history[-1]["samples_per_s"],
        "elapsed_s": time.perf_counter() - start,
    }


def train_one_epoch(
    state: TrainState, loader: DataLoader, device: torch.device, recorder: EpochRecorder
) -> tuple[float, int]:
    """One pass over ``loader``; returns the mean of the batch losses and the maps seen."""
    state.model.train()
    total, n_samples = 0.0, 0
    for x, y, _ in loader:
        x, y = to_device(x, device), y.to(device, non_blocking=True)
        with autocast(device):
            mean, std = state.model(x)
        loss = moment_loss(mean, std, y)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.scheduler.step()
        state.step += 1
        batch_loss = loss.item()
        total += batch_loss
        n_samples += len(y)
        recorder.batch(state.step, batch_loss)
    return total / len(loader), n_samples


def validation_loss(
    model: nn.Module, loader: DataLoader, dataset: ShardDataset, device: torch.device
) -> float:
    """Moment loss over the whole validation set at once.

    The loss is a log of means over maps, so averaging it batch by batch would depend on the
    batch size; predictions are collected first and the loss taken once.
    """
    mean, std = collect_outputs(model, loader, device)
    target = torch.from_numpy(dataset.targets)
    return float(moment_loss(torch.from_numpy(mean), torch.from_numpy(std), target))


@torch.no_grad()
def collect_outputs(
    model: nn.Module, loader: DataLoader, device: torch.device, method: str = "forward"
) -> tuple[np.ndarray, ...]:
    """Run ``model.<method>`` in eval mode over ``loader`` (unshuffled); stack outputs float32.

    Returns one array per output of the method (``forward``: mean (n, P), std (n, P);
    ``features``: embeddings (n, D)), in dataset order.
    """
    model.eval()
    fn = getattr(model, method)
    chunks: list[list[np.ndarray]] = []
    for x, _, _ in loader:
        with autocast(device):
            out = fn(to_device(x, device))
        out = out if isinstance(out, tuple) else (out,)
        if not chunks:
            chunks = [[] for _ in out]
        for store, tensor in zip(chunks, out, strict=True):
            store.append(tensor.float().cpu().numpy())
    return tuple(np.concatenate(store) for store in chunks)


def check_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validated plain-data copy of the experiment settings (JSON types only).

    Plain data is what ``torch.load(weights_only=True)`` accepts back from the model file.
    """
    missing = [key for key in REQUIRED_SETTINGS if key not in settings]
    if missing:
        raise KeyError(f"experiment settings lack {missing} (have {sorted(settings)})")
    cfg = json.loads(json.dumps(dict(settings)))
    for key in ("epochs", "batch_size", "hidden"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(
                f"experiment setting '{key}' must be a positive integer, got {cfg[key]!r}"
            )
    for key in ("fields", "params"):
        if isinstance(cfg[key], str) or not cfg[key]:
            raise ValueError(
                f"experiment setting '{key}' must be a non-empty list, got {cfg[key]!r}"
            )
    return cfg


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from the experiment seed.

    astroflow itself draws only from torch generators; the global Python and NumPy generators
    are seeded for any library code that uses them.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is what such code uses
    torch.manual_seed(seed)


def make_loader(
    dataset: ShardDataset,
    batch_size: int,
    seed: int,
    num_workers: int,
    device: torch.device,
    train: bool,
) -> DataLoader:
    """DataLoader for training (shuffled, last partial batch dropped) or evaluation (in order).

    The loader's own generator, seeded from the experiment seed, fixes the shuffling and the
    worker seeds. Workers persist across epochs so each reads its shards once. The partial
    last batch is dropped in training because BatchNorm statistics of a handful of maps are
    noise (and fail outright for one map).
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(dataset) > batch_size,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copy of the weights (survives further training steps)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class EpochRecorder:
    """Per-epoch record: a log line, a row of train_log.csv, TensorBoard scalars.

    The CSV is rewritten atomically after every epoch, so a job killed mid-run leaves a valid
    table of the epochs it finished.
    """

    def __init__(
        self, csv_path: str | os.PathLike[str], tensorboard_dir: str | os.PathLike[str], epochs: int
    ) -> None:
        self.csv_path = Path(csv_path)
        self.epochs = epochs
        Path(tensorboard_dir).mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(tensorboard_dir))

    def __enter__(self) -> EpochRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()

    def batch(self, step: int, loss: float) -> None:
        self.writer.add_scalar("loss/train_batch", loss, step)

    def record(
        self,
        state: TrainState,
        train_loss: float,
        val_loss: float,
        samples_per_s: float,
        elapsed_s: float,
    ) -> None:
        lr = state.scheduler.get_last_lr()[0]
        values = (state.epoch, state.step, train_loss, val_loss, lr, samples_per_s, elapsed_s)
        state.history.append(dict(zip(LOG_COLUMNS, values, strict=True)))
        self._write_csv(state.history)
        self.writer.add_scalar("loss/train", train_loss, state.epoch)
        self.writer.add_scalar("loss/val", val_loss, state.epoch)
        self.writer.add_scalar("lr", lr, state.epoch)
        self.writer.add_scalar("samples_per_s", samples_per_s, state.epoch)
        self.writer.flush()
        left = elapsed_s / state.epoch * (self.epochs - state.epoch)
        best = " (best)" if state.best_epoch == state.epoch else ""
        log.info(
            "epoch %d/%d loss %.4f val %.4f%s lr %.2e %.0f samples/s, %s left",
            state.epoch,
            self.epochs,
            train_loss,
            val_loss,
            best,
            lr,
            samples_per_s,
            _duration(left),
        )

    def _write_csv(self, rows: list[dict[str, float]]) -> None:
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def save_model(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> Path:
    """Write a model file atomically: ``meta`` (plain data) plus ``state_dict`` (tensors).

    ``meta`` must hold ``model`` (registry name), ``arch`` (constructor kwargs), ``fields``,
    ``params`` and ``settings``; the file records no code, so it loads with
    ``torch.load(weights_only=True)`` and :func:`load_model` rebuilds the network by name.
    """
    payload = {"format_version": MODEL_FORMAT_VERSION, **meta, "state_dict": dict(state_dict)}
    missing = [key for key in _MODEL_KEYS if key not in payload]
    if missing:
        raise ValueError(f"model metadata for {path} lacks {missing}")
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_model(
    path: str | os.PathLike[str], device: str | torch.device | None = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network saved in ``path`` on ``device``, in eval mode; return (model, meta).

    ``meta`` is the file's content without the weights. A missing file, a file that is not a
    weights-only torch file, a missing key or weights that do not fit the architecture raise
    one error naming the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or unsafe files
        raise ModelFileError(f"{path}: not a weights-only torch model file ({err})") from err
    if not isinstance(payload, dict):
        raise ModelFileError(f"{path}: expected a dict, found {type(payload).__name__}")
    missing = [key for key in _MODEL_KEYS if key not in payload]
    if missing:
        raise ModelFileError(f"{path}: key '{missing[0]}' missing (have {sorted(payload)})")
    if payload["format_version"] != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: key 'format_version' is {payload['format_version']}, "
            f"this astroflow reads {MODEL_FORMAT_VERSION}"
        )
    try:
        model = build_model(payload["model"], **payload["arch"])
    except (TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: keys 'model'/'arch' do not build a network ({err})") from err
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ModelFileError(
            f"{path}: key 'state_dict' does not fit {payload['model']}: {err}"
        ) from err
    device = select_device(None if device is None else str(device))
    model = prepare_model(model, device).eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, meta
