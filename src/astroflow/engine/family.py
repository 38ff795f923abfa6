"""What the engine asks of a model family: its data, networks, optimizers and one training step.

The engine (:func:`astroflow.engine.loop.fit`) owns what every family shares: the epoch plan
and loaders, the process group, precision, signals, checkpoints, resume and the monitor. A
:class:`TrainingFamily` owns what differs: the datasets, any number of networks with their
optimizers and schedules, EMA copies, and what one step does with a batch. Everything the step
changes lives in :class:`Parts`, which a checkpoint saves and restores whole, so a family with
a generator, a critic, two optimizers and an EMA generator resumes as bitwise as a single
network does.

:class:`SupervisedFamily` is the common case (one network, one loss of the global batch, the
validation loss of the whole set at once); the cnn2d, cnn3d and classifier families derive
from it and supply only their data, network and loss.
"""

from __future__ import annotations

import abc
import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from astroflow.batch import Batch
from astroflow.device import autocast, to_device
from astroflow.engine.distributed import World
from astroflow.evaluation.outputs import as_tuple, collect_outputs

Paths = Sequence[str | os.PathLike[str]]


class EMA:
    """An exponential moving average of a network's weights, for products that want the
    smoothed weights (a GAN generator, a self-supervised teacher).

    The copy is in eval mode and never trains; buffers (BatchNorm statistics) are copied as
    they are.
    """

    def __init__(self, network: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """Move the average one step towards ``network`` (the plain module, not DDP)."""
        for avg, new in zip(self.module.parameters(), network.parameters(), strict=True):
            avg.lerp_(new.detach(), 1.0 - self.decay)
        for avg, new in zip(self.module.buffers(), network.buffers(), strict=True):
            avg.copy_(new)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)


@dataclass
class Parts:
    """Everything a training step changes, by name.

    ``networks`` are the plain modules (their keys are those of model files); ``calls`` the
    same networks as a step calls them (DDP across ranks, compiled on request). Each optimizer
    has a scheduler and a loss scaler of the same name.
    """

    networks: dict[str, nn.Module]
    calls: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    scalers: dict[str, torch.amp.GradScaler]
    ema: dict[str, EMA] = field(default_factory=dict)

    def update(self, name: str, loss: torch.Tensor) -> None:
        """One optimizer step of ``name`` on ``loss``: clear, backward (scaled), step, schedule."""
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        self.schedulers[name].step()

    def train(self, mode: bool = True) -> None:
        for network in self.networks.values():
            network.train(mode)

    def lr(self) -> float:
        """Learning rate of the first optimizer (the one the logs show)."""
        return next(iter(self.schedulers.values())).get_last_lr()[0]

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {
            "networks": {k: v.state_dict() for k, v in self.networks.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "scalers": {k: v.state_dict() for k, v in self.scalers.items()},
            "ema": {k: v.state_dict() for k, v in self.ema.items()},
        }

    def load_state_dict(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        for group in ("networks", "optimizers", "schedulers", "scalers", "ema"):
            mine = getattr(self, group)
            if set(state[group]) != set(mine):
                raise KeyError(
                    f"checkpoint has {group} {sorted(state[group])}, run has {sorted(mine)}"
                )
            for name, part in mine.items():
                part.load_state_dict(state[group][name])


@dataclass(frozen=True)
class StepContext:
    """What a step needs besides the parts: where it runs, in which precision, which step."""

    world: World
    precision: str
    step: int

    @property
    def device(self) -> torch.device:
        return self.world.device

    def autocast(self):
        """Mixed precision for forward passes (:func:`astroflow.device.autocast`)."""
        return autocast(self.world.device, self.precision)


@dataclass(frozen=True)
class Validation:
    """A validation pass: ``loss`` (lower is better; it picks the saved epoch) and TensorBoard
    images (H, W) in [0, 1] by tag."""

    loss: float
    images: Mapping[str, np.ndarray] = field(default_factory=dict)


class TrainingFamily(abc.ABC):
    """The torch side of a model family (its descriptor, torch-free, is in
    :mod:`astroflow.families`)."""

    items: str = "samples"
    """What one training item is, for log lines (maps, cubes)."""

    loss_names: tuple[str, ...] = ("loss",)
    """Scalars a step returns, in order; the first is the training loss of the logs."""

    def check(self, cfg: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Raise ValueError naming a setting this family cannot use."""

    @abc.abstractmethod
    def datasets(
        self, cfg: Mapping[str, Any], train_paths: Paths, val_paths: Paths
    ) -> tuple[Dataset, Dataset]:
        """Training and validation sets, scaled with statistics of the training shards only.

        Both answer ``dataset[list_of_keys]`` with a :class:`Batch` and have ``len``,
        ``preload()`` and ``n_transforms`` (1: no augmentation).
        """

    @abc.abstractmethod
    def arch(self, cfg: Mapping[str, Any], train_set: Dataset) -> dict[str, Any]:
        """Constructor arguments of the networks (stored in the model file)."""

    @abc.abstractmethod
    def networks(self, arch: Mapping[str, Any]) -> dict[str, nn.Module]:
        """Freshly initialized networks by name (same weights on every rank: seeded before)."""

    @abc.abstractmethod
    def optimizers(
        self, cfg: Mapping[str, Any], networks: Mapping[str, nn.Module], total_steps: int
    ) -> dict[str, tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]]:
        """An optimizer and its schedule per trained network, by name."""

    def ema_decays(self, cfg: Mapping[str, Any]) -> dict[str, float]:
        """Networks that get an EMA copy, with its decay (none by default)."""
        return {}

    @abc.abstractmethod
    def step(self, parts: Parts, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, ...]:
        """One training step on this rank's share of a global batch.

        Returns the detached scalars of :attr:`loss_names`, in that order.
        """

    @abc.abstractmethod
    def validate(
        self, parts: Parts, loader: DataLoader, dataset: Dataset, world: World
    ) -> Validation:
        """Score the validation set (each rank holds a block of it in ``loader``)."""

    @abc.abstractmethod
    def product_network(self, parts: Parts) -> nn.Module:
        """The network whose weights ``model.pt`` holds (the trained one, or its EMA copy)."""

    @abc.abstractmethod
    def model_meta(self, cfg: Mapping[str, Any], train_set: Dataset) -> dict[str, Any]:
        """Model-file entries that products need: ``fields``, ``params``, ``normalization``."""

    @abc.abstractmethod
    def describe(self, cfg: Mapping[str, Any], train_set: Dataset) -> str:
        """What is learned from what, for the first log line of a run."""

    def input_names(self, cfg: Mapping[str, Any]) -> list[str]:
        """Names of the input channels that TensorBoard shows as images (none by default)."""
        return []


class SupervisedFamily(TrainingFamily):
    """One network trained on one loss of (outputs, targets) of the global batch.

    Subclasses supply the data (:meth:`datasets`, :meth:`arch`), the network
    (:meth:`networks` with the single name ``model``) and :meth:`loss`.
    """

    def optimizers(
        self, cfg: Mapping[str, Any], networks: Mapping[str, nn.Module], total_steps: int
    ) -> dict[str, tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]]:
        (model,) = networks.values()
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"]
        )
        # One cycle: warm up over the first 30% of the steps, then anneal to ~0; robust for
        # the short runs of a workflow and free of a separately tuned warm-up.
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg["lr"], total_steps=total_steps
        )
        return {"model": (optimizer, schedule)}

    @abc.abstractmethod
    def loss(self, outputs: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of the network's outputs for a whole (global) batch."""

    def step(self, parts: Parts, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, ...]:
        """Forward in mixed precision, loss of the global batch, one optimizer step.

        Outputs and targets of all ranks are gathered before the loss: a loss of batch
        statistics (the moment loss) averaged over ranks would be another objective.
        """
        x = to_device(batch.x, ctx.device)
        y = batch.y.to(ctx.device, non_blocking=True)
        with ctx.autocast():
            outputs = as_tuple(parts.calls["model"](x))
        *outputs, y = ctx.world.global_batch(*outputs, y)
        loss = self.loss(tuple(outputs), y)
        parts.update("model", loss)
        return (loss.detach(),)

    def validate(
        self, parts: Parts, loader: DataLoader, dataset: Dataset, world: World
    ) -> Validation:
        """The loss over the whole validation set at once, and predicted-vs-true images.

        The moment loss is a log of means over maps, so averaging it batch by batch would
        depend on the batch size; outputs are collected first (each rank predicts its block of
        the set) and the loss taken once.
        """
        model = parts.networks["model"]
        world.sync_buffers(model)
        outputs = tuple(world.gather_rows(o) for o in collect_outputs(model, loader, world.device))
        target = torch.from_numpy(dataset.targets)
        loss = float(self.loss(tuple(torch.from_numpy(o) for o in outputs), target))
        return Validation(loss, self.validation_images(outputs, dataset))

    def validation_images(
        self, outputs: tuple[np.ndarray, ...], dataset: Dataset
    ) -> dict[str, np.ndarray]:
        """TensorBoard images of one validation pass (none by default)."""
        return {}

    def product_network(self, parts: Parts) -> nn.Module:
        return parts.networks["model"]
