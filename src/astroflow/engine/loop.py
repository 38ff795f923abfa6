"""The training loop, read top to bottom in :func:`fit`.

What differs between model families (datasets, networks, optimizers, the step, validation)
comes from the experiment's :class:`~astroflow.engine.family.TrainingFamily`. Everything around
the loop is a small named helper of this package: the epoch plan and loaders, the process group
(one process, or one per GPU under torchrun), resume and checkpoints, stop signals, and the
monitor (progress, TensorBoard, CSV); device and precision come from :mod:`astroflow.device`.
Everything that changes while training lives in one
:class:`~astroflow.engine.checkpoint.TrainState`, which is what a checkpoint saves.

Products: ``model.pt`` (the product network at the best validation loss; see
:mod:`astroflow.modelfile`), ``train_log.csv`` (one row per epoch) and TensorBoard event files
in a directory. Only rank 0 writes them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from astroflow.device import autocast_dtype, grad_scaler, memory_format, prepare_model
from astroflow.engine import distributed
from astroflow.engine.batches import EpochPlan, PlanSampler, auto_workers, eval_loader, train_loader
from astroflow.engine.checkpoint import EVENT_COLUMNS, TrainState, fingerprint
from astroflow.engine.distributed import World
from astroflow.engine.family import EMA, Parts, Paths, StepContext, TrainingFamily
from astroflow.engine.monitor import Monitor
from astroflow.engine.options import RunOptions
from astroflow.engine.resume import Checkpointer
from astroflow.engine.rng import derive_seed, seed_everything
from astroflow.modelfile import save_model

log = logging.getLogger("astroflow.train")

COMMON_SETTINGS = ("model", "epochs", "batch_size", "lr", "weight_decay", "seed")
"""Settings every family trains with; a family checks its own (:meth:`TrainingFamily.check`)."""


def fit(
    family: TrainingFamily,
    settings: Mapping[str, Any],
    train_paths: Paths,
    val_paths: Paths,
    out_model: str | os.PathLike[str],
    out_log: str | os.PathLike[str],
    tensorboard_dir: str | os.PathLike[str],
    options: RunOptions | None = None,
) -> dict[str, float]:
    """Train ``family`` on the experiment ``settings`` and write its model and logs.

    ``settings`` is one experiment of the workflow config: ``model`` (the family's name),
    ``epochs``, ``batch_size`` (items per step, over all ranks), ``lr``, ``weight_decay``,
    ``seed``, and what the family needs besides; all of it is stored in the model file.
    ``options`` says how to run (checkpoints, precision, threads, loader workers; see
    :class:`~astroflow.engine.options.RunOptions`). Under torchrun every rank calls this
    function; otherwise it is a world of one.

    With a checkpoint directory, a run resumes from its newest checkpoint, saves every epoch
    (and at the intervals of the options), and on SIGTERM/SIGUSR1 saves at the next step and
    raises :class:`~astroflow.engine.resume.TrainingInterrupted`.

    Returns a summary: best_epoch, best_val_loss, samples_per_s (training throughput of the
    last epoch), elapsed_s (training time over all attempts), checkpoint_s (time spent writing
    checkpoints in this attempt), world_size.
    """
    cfg = check_settings(settings, family)
    options = options or RunOptions()
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    with distributed.session(options.device) as world:
        device = world.device
        seed_everything(cfg["seed"])
        train_set, val_set = family.datasets(cfg, train_paths, val_paths)
        plan = EpochPlan(
            len(train_set), cfg["batch_size"], cfg["seed"], world.size, train_set.n_transforms
        )
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

        arch = family.arch(cfg, train_set)
        parts = build_parts(family, cfg, arch, plan, world, options)
        state = TrainState(
            parts,
            epoch_loss=torch.zeros((), dtype=torch.float64, device=device),
            n_event_columns=len(EVENT_COLUMNS) + len(family.loss_names) - 1,
        )
        run_id = fingerprint(cfg, n_train_maps=len(train_set))
        monitor = Monitor(
            out_log,
            tensorboard_dir,
            epochs=cfg["epochs"],
            steps_per_epoch=plan.steps_per_epoch,
            global_batch=plan.batch_size,
            loss_names=family.loss_names,
            input_names=family.input_names(cfg),
            options=options,
            enabled=world.is_main,
        )
        checkpoints = Checkpointer(options, run_id, world, cfg["seed"], plan.steps_per_epoch)
        with checkpoints, monitor:
            log_start(cfg, family, train_set, val_set, plan, world, options, workers, checkpoints)
            checkpoints.resume(state)
            monitor.start(state)
            while state.epoch < cfg["epochs"]:
                sampler.set_epoch(state.epoch, state.step - state.epoch * plan.steps_per_epoch)
                monitor.begin_epoch(state)
                train_one_epoch(state, family, train_batches, world, options, monitor, checkpoints)
                train_loss = float(state.epoch_loss) / plan.steps_per_epoch
                samples_per_s = monitor.epoch_throughput(state)
                validation = family.validate(parts, val_batches, val_set, world)
                state.epoch += 1
                state.epoch_loss.zero_()
                if not math.isfinite(train_loss):
                    raise FloatingPointError(
                        f"training diverged: loss {train_loss} in epoch {state.epoch}"
                    )
                if validation.loss < state.best_val_loss:
                    state.best_val_loss, state.best_epoch = validation.loss, state.epoch
                    state.best_weights = cpu_state_dict(family.product_network(parts))
                monitor.end_epoch(
                    state, train_loss, validation.loss, samples_per_s, validation.images
                )
                checkpoints.end_epoch(state)

        if state.best_weights is None:
            raise FloatingPointError(f"validation loss was never finite in {state.epoch} epochs")
        meta = {
            "model": cfg["model"],
            "arch": arch,
            "settings": cfg,
            **family.model_meta(cfg, train_set),
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
    family: TrainingFamily,
    loader: DataLoader,
    world: World,
    options: RunOptions,
    monitor: Monitor,
    checkpoints: Checkpointer,
) -> None:
    """The remaining steps of the current epoch (their losses add up in ``state.epoch_loss``)."""
    state.parts.train()
    for batch in loader:
        losses = family.step(state.parts, batch, StepContext(world, options.precision, state.step))
        state.step += 1
        state.epoch_loss += losses[0]
        monitor.after_step(state, batch.x, losses)
        checkpoints.after_step(state)


def build_parts(
    family: TrainingFamily,
    cfg: Mapping[str, Any],
    arch: Mapping[str, Any],
    plan: EpochPlan,
    world: World,
    options: RunOptions,
) -> Parts:
    """Fresh networks, optimizers, schedules, loss scalers and EMA copies of a run.

    Every rank builds the same initial weights from the seed; afterwards each rank's
    generators are reseeded by rank so that dropout masks (and latent draws) differ between
    ranks.
    """
    device = world.device
    networks = {
        name: prepare_model(network, device) for name, network in family.networks(arch).items()
    }
    calls = {name: distributed.wrap_model(network, world) for name, network in networks.items()}
    if world.size > 1:
        seed_everything(derive_seed(cfg["seed"], world.rank))
    if options.compile:
        calls = {name: torch.compile(call) for name, call in calls.items()}
    total_steps = cfg["epochs"] * plan.steps_per_epoch
    schedules = family.optimizers(cfg, networks, total_steps)
    return Parts(
        networks=networks,
        calls=calls,
        optimizers={name: pair[0] for name, pair in schedules.items()},
        schedulers={name: pair[1] for name, pair in schedules.items()},
        scalers={name: grad_scaler(device, options.precision) for name in schedules},
        ema={name: EMA(networks[name], decay) for name, decay in family.ema_decays(cfg).items()},
    )


def log_start(
    cfg: Mapping[str, Any],
    family: TrainingFamily,
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
        family.items,
        len(val_set),
        family.describe(cfg, train_set),
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


def check_settings(settings: Mapping[str, Any], family: TrainingFamily) -> dict[str, Any]:
    """Validated plain-data copy of the experiment settings (JSON types only).

    Plain data is what ``torch.load(weights_only=True)`` accepts back from the model file.
    The family adds its own checks.
    """
    missing = [key for key in COMMON_SETTINGS if key not in settings]
    if missing:
        raise KeyError(f"experiment settings lack {missing} (have {sorted(settings)})")
    cfg = json.loads(json.dumps(dict(settings)))
    for key in ("epochs", "batch_size"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(
                f"experiment setting '{key}' must be a positive integer, got {cfg[key]!r}"
            )
    family.check(cfg)
    return cfg


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copy of the weights (survives further training steps)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
