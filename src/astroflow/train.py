"""Train a network on shards: one loop, read top to bottom in :func:`train_experiment`.

What differs between model families (datasets, network arguments, loss, normalization) comes
from the experiment's :class:`~astroflow.tasks.base.Task` (cnn2d: maps, cnn3d: cubes).
Everything around the loop is a small named helper from :mod:`astroflow.engine`: the epoch
plan and loaders, the process group (one process, or one per GPU under torchrun), resume and
checkpoints, stop signals, and the monitor (progress, TensorBoard, CSV); device and precision
come from :mod:`astroflow.device`. Everything that changes while training lives in one
:class:`~astroflow.engine.checkpoint.TrainState`, which is what a checkpoint saves.

Products: ``model.pt`` (best validation loss; a plain dict of tensors and builtins, loadable
with ``torch.load(weights_only=True)``, see :func:`save_model`), ``train_log.csv`` (one row
per epoch) and TensorBoard event files in a directory. Only rank 0 writes them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from astroflow.device import (
    autocast,
    autocast_dtype,
    grad_scaler,
    memory_format,
    prepare_model,
    select_device,
    to_device,
)
from astroflow.engine import distributed
from astroflow.engine.checkpoint import TrainState, fingerprint
from astroflow.engine.distributed import World
from astroflow.engine.loader import auto_workers, eval_loader, train_loader
from astroflow.engine.monitor import Monitor
from astroflow.engine.options import RunOptions
from astroflow.engine.resume import Checkpointer
from astroflow.engine.rng import derive_seed, seed_everything
from astroflow.engine.sampler import EpochPlan, PlanSampler
from astroflow.io import atomic_path
from astroflow.models import build_model
from astroflow.tasks import get_task
from astroflow.tasks.base import Task

log = logging.getLogger(__name__)

MODEL_FORMAT_VERSION = 1
REQUIRED_SETTINGS = (
    "model",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "hidden",
    "dropout",
    "seed",
)
_MODEL_KEYS = ("format_version", "model", "arch", "state_dict", "fields", "params", "settings")


class ModelFileError(ValueError):
    """A model file cannot be used; the message names the file and the missing or bad key."""


def train_experiment(
    settings: Mapping[str, Any],
    train_paths: Sequence[str | os.PathLike[str]],
    val_paths: Sequence[str | os.PathLike[str]],
    out_model: str | os.PathLike[str],
    out_log: str | os.PathLike[str],
    tensorboard_dir: str | os.PathLike[str],
    options: RunOptions | None = None,
) -> dict[str, float]:
    """Train the experiment described by ``settings`` and write its model and logs.

    ``settings`` is one experiment of the workflow config: ``model``, ``epochs``,
    ``batch_size`` (items per optimizer step, over all ranks), ``lr`` (peak of the one-cycle
    schedule), ``weight_decay``, ``hidden``, ``dropout``, ``seed``, and what the model's task
    needs besides (cnn2d: ``fields``, ``params``; cnn3d: ``params``); other keys are stored in
    the model file untouched. ``options`` says how to run (checkpoints, precision, threads,
    loader workers; see :class:`~astroflow.engine.options.RunOptions`). Under torchrun every
    rank calls this function; otherwise it is a world of one.

    With a checkpoint directory, a run resumes from its newest checkpoint, saves every epoch
    (and at the intervals of the options), and on SIGTERM/SIGUSR1 saves at the next step and
    raises :class:`~astroflow.engine.resume.TrainingInterrupted`.

    Returns a summary: best_epoch, best_val_loss, samples_per_s (training throughput of the
    last epoch), elapsed_s (training time over all attempts), checkpoint_s (time spent writing
    checkpoints in this attempt), world_size.
    """
    task = get_task(settings["model"]) if "model" in settings else None
    cfg = check_settings(settings, task)  # names a missing 'model' first
    options = options or RunOptions()
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    with distributed.session(options.device) as world:
        device = world.device
        seed_everything(cfg["seed"])
        train_set, val_set = task.datasets(cfg, train_paths, val_paths)
        plan = EpochPlan(len(train_set), cfg["batch_size"], cfg["seed"], world.size)
        sampler = PlanSampler(plan, world.rank)
        workers = options.num_workers
        if workers is None:
            workers = auto_workers(options.threads, device)
        for dataset in (train_set, val_set):
            dataset.preload()  # before workers fork, so that they share the data
        train_batches = train_loader(train_set, sampler, device, workers)
        val_batches = eval_loader(
            Subset(val_set, world.shard(len(val_set))), plan.rank_batch_size, device, workers
        )

        arch = task.arch(cfg, train_set)
        state, net = build_training(cfg, arch, plan, world, options)
        run_id = fingerprint(cfg, n_train_maps=len(train_set))
        image_inputs, image_targets = task.monitor_names(cfg)
        monitor = Monitor(
            out_log,
            tensorboard_dir,
            epochs=cfg["epochs"],
            steps_per_epoch=plan.steps_per_epoch,
            global_batch=plan.batch_size,
            fields=image_inputs,
            params=image_targets,
            options=options,
            enabled=world.is_main,
        )
        checkpoints = Checkpointer(options, run_id, world, cfg["seed"], plan.steps_per_epoch)
        with checkpoints, monitor:
            log_start(cfg, task, train_set, val_set, plan, world, options, workers, checkpoints)
            checkpoints.resume(state)
            monitor.start(state)
            while state.epoch < cfg["epochs"]:
                sampler.set_epoch(state.epoch, state.step - state.epoch * plan.steps_per_epoch)
                monitor.begin_epoch(state)
                train_one_epoch(
                    state, net, task, train_batches, world, options, monitor, checkpoints
                )
                train_loss = float(state.epoch_loss) / plan.steps_per_epoch
                samples_per_s = monitor.epoch_throughput(state)
                world.sync_buffers(state.model)
                val_loss, val_outputs = validate(state.model, val_batches, val_set, world, task)
                state.epoch += 1
                state.epoch_loss.zero_()
                if not math.isfinite(train_loss):
                    raise FloatingPointError(
                        f"training diverged: loss {train_loss} in epoch {state.epoch}"
                    )
                if val_loss < state.best_val_loss:
                    state.best_val_loss, state.best_epoch = val_loss, state.epoch
                    state.best_weights = cpu_state_dict(state.model)
                monitor.end_epoch(
                    state,
                    train_loss,
                    val_loss,
                    samples_per_s,
                    *task.monitor_columns(val_outputs, val_set),
                )
                checkpoints.end_epoch(state)

        if state.best_weights is None:
            raise FloatingPointError(f"validation loss was never finite in {state.epoch} epochs")
        meta = {
            "model": cfg["model"],
            "arch": arch,
            "settings": cfg,
            **task.model_meta(cfg, train_set),
            "best_epoch": state.best_epoch,
            "best_val_loss": state.best_val_loss,
            "run": {
                "world_size": world.size,
                "backend": world.backend or "none",
                "device": device.type,
                "precision": precision_name(device, options.precision),
                "resumed_at_steps": state.resumed_at,
            },
        }
        if world.is_main:
            save_model(out_model, state.best_weights, meta)
        checkpoints.finish()
        log.info("best validation loss %.4f in epoch %d", state.best_val_loss, state.best_epoch)
        saves = checkpoints.save_seconds
        if saves:
            log.info("%d checkpoints, %.0f ms each on average", len(saves), 1e3 * np.mean(saves))
        return {
            "best_epoch": state.best_epoch,
            "best_val_loss": state.best_val_loss,
            "samples_per_s": state.history[-1]["samples_per_s"],
            "elapsed_s": state.elapsed(),
            "checkpoint_s": float(np.sum(saves)),
            "world_size": world.size,
        }


def train_one_epoch(
    state: TrainState,
    net: nn.Module,
    task: Task,
    loader: DataLoader,
    world: World,
    options: RunOptions,
    monitor: Monitor,
    checkpoints: Checkpointer,
) -> None:
    """The remaining steps of the current epoch (their losses add up in ``state.epoch_loss``).

    The loss is that of the global batch: outputs and targets of all ranks are gathered first
    (the moment loss is built from batch means, so a mean of per-rank losses would be another
    objective).
    """
    device = world.device
    net.train()
    for x, y, _ in loader:
        x, y = to_device(x, device), y.to(device, non_blocking=True)
        with autocast(device, options.precision):
            outputs = as_tuple(net(x))
        *outputs, y = world.global_batch(*outputs, y)
        loss = task.loss(tuple(outputs), y)
        state.optimizer.zero_grad(set_to_none=True)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        state.scheduler.step()
        state.step += 1
        state.epoch_loss += loss.detach()
        monitor.after_step(state, x, loss)
        checkpoints.after_step(state)


def build_training(
    cfg: Mapping[str, Any],
    arch: Mapping[str, Any],
    plan: EpochPlan,
    world: World,
    options: RunOptions,
) -> tuple[TrainState, nn.Module]:
    """Fresh training state and the network as the step calls it (DDP, compiled or plain).

    Every rank builds the same initial weights from the seed; afterwards each rank's
    generators are reseeded by rank so that dropout masks differ between ranks.
    """
    device = world.device
    net = distributed.wrap_model(prepare_model(build_model(cfg["model"], **arch), device), world)
    model = distributed.unwrap(net)
    if world.size > 1:
        seed_everything(derive_seed(cfg["seed"], world.rank))
    if options.compile:
        net = torch.compile(net)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"]
    )
    # One cycle: warm up over the first 30% of the steps, then anneal to ~0; robust for the
    # short runs of a workflow and free of a separately tuned warm-up.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg["lr"], total_steps=cfg["epochs"] * plan.steps_per_epoch
    )
    state = TrainState(
        model,
        optimizer,
        scheduler,
        grad_scaler(device, options.precision),
        epoch_loss=torch.zeros((), dtype=torch.float64, device=device),
    )
    return state, net


def log_start(
    cfg: Mapping[str, Any],
    task: Task,
    train_set: Dataset,
    val_set: Dataset,
    plan: EpochPlan,
    world: World,
    options: RunOptions,
    workers: int,
    checkpoints: Checkpointer,
) -> None:
    """One line with everything that decides speed and reproducibility of the run."""
    device = world.device
    layout = "channels-last" if memory_format(device) is torch.channels_last else "contiguous"
    log.info(
        "training %s on %d %s (%d validation), %s: %d epochs of %d steps, "
        "global batch %d (%d per process); world size %d (%s), device %s, precision %s, "
        "%s layout, %d loader workers and %d threads per process%s; %s",
        cfg["model"],
        len(train_set),
        task.items,
        len(val_set),
        task.describe(cfg, train_set),
        cfg["epochs"],
        plan.steps_per_epoch,
        plan.batch_size,
        plan.rank_batch_size,
        world.size,
        world.backend or "single process",
        device,
        precision_name(device, options.precision),
        layout,
        workers,
        torch.get_num_threads(),
        ", torch.compile" if options.compile else "",
        checkpoints.describe(),
    )


def precision_name(device: torch.device, precision: str) -> str:
    dtype = autocast_dtype(device, precision)
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def validate(
    model: nn.Module, loader: DataLoader, dataset: Dataset, world: World, task: Task
) -> tuple[float, tuple[np.ndarray, ...]]:
    """The task's loss over the whole validation set at once, and the network's outputs.

    The moment loss is a log of means over maps, so averaging it batch by batch would depend
    on the batch size; outputs are collected first (each rank predicts its block of the set)
    and the loss taken once.
    """
    outputs = tuple(world.gather_rows(o) for o in collect_outputs(model, loader, world.device))
    target = torch.from_numpy(dataset.targets)
    loss = float(task.loss(tuple(torch.from_numpy(o) for o in outputs), target))
    return loss, outputs


def as_tuple(out: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Network outputs as a tuple, whether the network returns one tensor or several."""
    return out if isinstance(out, tuple) else (out,)


@torch.no_grad()
def collect_outputs(
    model: nn.Module, loader: DataLoader, device: torch.device, method: str = "forward"
) -> tuple[np.ndarray, ...]:
    """Run ``model.<method>`` in eval mode over ``loader`` (unshuffled); stack outputs float32.

    Returns one array per output of the method (``forward``: cnn2d mean (n, P) and std
    (n, P), cnn3d profiles (n, 2 nb, ny, nx); ``features``: embeddings (n, D)), in dataset
    order. Computed in float32 whatever the
    training precision: these outputs are products (predictions, embeddings, the validation
    loss that picks the saved epoch), and bf16 would round them to three significant digits.
    """
    model.eval()
    fn = getattr(model, method)
    chunks: list[list[np.ndarray]] = []
    for x, _, _ in loader:
        out = as_tuple(fn(to_device(x, device)))
        if not chunks:
            chunks = [[] for _ in out]
        for store, tensor in zip(chunks, out, strict=True):
            store.append(tensor.float().cpu().numpy())
    return tuple(np.concatenate(store) for store in chunks)


def check_settings(settings: Mapping[str, Any], task: Task | None = None) -> dict[str, Any]:
    """Validated plain-data copy of the experiment settings (JSON types only).

    Plain data is what ``torch.load(weights_only=True)`` accepts back from the model file.
    ``task`` adds the settings its model family needs and its own checks.
    """
    required = REQUIRED_SETTINGS + (task.required_settings if task else ())
    missing = [key for key in required if key not in settings]
    if missing:
        raise KeyError(f"experiment settings lack {missing} (have {sorted(settings)})")
    cfg = json.loads(json.dumps(dict(settings)))
    for key in ("epochs", "batch_size", "hidden"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(
                f"experiment setting '{key}' must be a positive integer, got {cfg[key]!r}"
            )
    if task is not None:
        task.check(cfg)
    return cfg


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copy of the weights (survives further training steps)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


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
