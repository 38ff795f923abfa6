"""What a run shows while it trains: progress, TensorBoard, the CSV log and epoch summaries.

On a terminal a tqdm bar counts steps; in a log file (a cluster job, a Snakemake rule) the
bar becomes one line every ``log_every_steps`` steps. TensorBoard gets the training loss (and
the family's other step losses), learning rate, samples per second and gradient norm every
``tensorboard_every_steps`` steps, the epoch losses, the first batch of input maps and, every
epoch, the images of the family's validation (predicted against true parameters, say).
Losses are summed on the device and read back only at these intervals, so monitoring never
stalls a GPU step by step.

Only rank 0 monitors. The CSV and TensorBoard files are rebuilt from the training state when
a run resumes (Snakemake deletes a failed job's outputs before it retries); the TensorBoard
directory belongs to the run, and a resumed run replaces the event files in it.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from astroflow.engine.checkpoint import EVENT_COLUMNS, TrainState
from astroflow.engine.options import RunOptions
from astroflow.io import atomic_path

log = logging.getLogger("astroflow.train")

LOG_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "lr", "samples_per_s", "elapsed_s")
"""Columns of train_log.csv, one row per epoch."""

INPUT_IMAGES = 8
"""Maps of the first batch shown in TensorBoard, per field."""

HISTOGRAM_BINS = 48
"""Pixels per side of the predicted-vs-true image of a parameter (scaled targets in [0, 1])."""


class Monitor:
    """Progress, TensorBoard and CSV of one run (a no-op on ranks other than 0).

    ``global_batch`` items are trained per step, ``steps_per_epoch`` steps per epoch;
    ``loss_names`` are the scalars a step returns (the first is the training loss) and
    ``input_names`` the input channels shown as images.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike[str],
        tensorboard_dir: str | os.PathLike[str],
        *,
        epochs: int,
        steps_per_epoch: int,
        global_batch: int,
        loss_names: Sequence[str],
        input_names: Sequence[str],
        options: RunOptions,
        enabled: bool = True,
    ) -> None:
        self.csv_path = Path(csv_path)
        self.tensorboard_dir = Path(tensorboard_dir)
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.global_batch = global_batch
        self.loss_names, self.input_names = list(loss_names), list(input_names)
        self.options = options
        self.enabled = enabled
        self.writer: SummaryWriter | None = None
        self.bar: tqdm | None = None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()

    # -- start ------------------------------------------------------------------------------

    def start(self, state: TrainState) -> None:
        """Open the outputs, replay the history of a resumed state, start the clocks."""
        now = time.perf_counter()
        self._attempt_start, self._attempt_first_step = now, state.step
        self._interval_start, self._interval_steps = now, 0
        self._interval_loss = torch.zeros(
            len(self.loss_names), dtype=torch.float64, device=state.epoch_loss.device
        )
        self._epoch_start, self._epoch_first_step = now, state.step
        if not self.enabled:
            return
        self.tensorboard_dir.mkdir(parents=True, exist_ok=True)
        if state.step > 0:  # resumed: the replay below replaces what earlier attempts wrote
            for stale in self.tensorboard_dir.glob("events.out.tfevents.*"):
                stale.unlink()
        self.writer = SummaryWriter(log_dir=str(self.tensorboard_dir))
        for row in state.events:
            self._write_step_scalars(dict(zip(self._event_columns(), row, strict=True)))
        for row in state.history:
            self._write_epoch_scalars(row)
        if state.history:
            self._write_csv(state.history)
        if sys.stderr.isatty():
            self.bar = tqdm(
                total=self.epochs * self.steps_per_epoch,
                initial=state.step,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
            )

    # -- every step -------------------------------------------------------------------------

    def _event_columns(self) -> tuple[str, ...]:
        return (*EVENT_COLUMNS, *self.loss_names[1:])

    def after_step(
        self, state: TrainState, x: torch.Tensor, losses: Sequence[torch.Tensor]
    ) -> None:
        """Account for one training step (``x`` is this rank's input batch)."""
        if not self.enabled:
            return
        self._interval_loss += torch.stack([loss.detach().double() for loss in losses])
        self._interval_steps += 1
        if state.step == 1:
            self._write_inputs(x)
        if self.bar is not None:
            self.bar.update()
        if state.step % self.options.tensorboard_every_steps == 0:
            row = self._step_row(state)
            state.events.append(tuple(row[c] for c in self._event_columns()))
            self._write_step_scalars(row)
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}")
        if self.bar is None and state.step % self.options.log_every_steps == 0:
            self._log_progress(state)

    def _step_row(self, state: TrainState) -> dict[str, float]:
        now = time.perf_counter()
        losses = (self._interval_loss / self._interval_steps).tolist()
        rate = self._interval_steps * self.global_batch / max(now - self._interval_start, 1e-9)
        self._interval_loss.zero_()
        self._interval_start, self._interval_steps = now, 0
        first_network = next(iter(state.parts.networks.values()))
        return {
            "step": state.step,
            "walltime": time.time(),
            "loss": losses[0],
            "lr": state.parts.lr(),
            "grad_norm": gradient_norm(first_network),
            "samples_per_s": rate,
            **dict(zip(self.loss_names[1:], losses[1:], strict=True)),
        }

    def _write_step_scalars(self, row: dict[str, float]) -> None:
        step, walltime = int(row["step"]), row["walltime"]
        for tag, key in (
            ("loss/train_step", "loss"),
            ("lr_step", "lr"),
            ("grad_norm", "grad_norm"),
            ("samples_per_s_step", "samples_per_s"),
        ):
            self.writer.add_scalar(tag, row[key], step, walltime=walltime)
        for name in self.loss_names[1:]:
            self.writer.add_scalar(f"loss/{name}_step", row[name], step, walltime=walltime)

    def _write_inputs(self, x: torch.Tensor) -> None:
        maps = x[:INPUT_IMAGES].detach().float().cpu()
        lo = maps.amin(dim=(-2, -1), keepdim=True)
        hi = maps.amax(dim=(-2, -1), keepdim=True)
        maps = (maps - lo) / (hi - lo).clamp_min(1e-12)
        for c, name in enumerate(self.input_names):
            self.writer.add_images(f"inputs/{name}", maps[:, c : c + 1], 0)

    def _log_progress(self, state: TrainState) -> None:
        in_epoch = state.step - state.epoch * self.steps_per_epoch
        loss = float(state.epoch_loss) / max(in_epoch, 1)
        log.info(
            "step %d/%d (epoch %d, batch %d/%d) loss %.4f lr %.2e, %s left",
            state.step,
            self.epochs * self.steps_per_epoch,
            state.epoch + 1,
            in_epoch,
            self.steps_per_epoch,
            loss,
            state.parts.lr(),
            _duration(self._time_left(state)),
        )

    def _time_left(self, state: TrainState) -> float:
        done = state.step - self._attempt_first_step
        if done == 0:
            return math.nan
        rate = (time.perf_counter() - self._attempt_start) / done
        return rate * (self.epochs * self.steps_per_epoch - state.step)

    # -- every epoch ------------------------------------------------------------------------

    def begin_epoch(self, state: TrainState) -> None:
        self._epoch_start, self._epoch_first_step = time.perf_counter(), state.step

    def epoch_throughput(self, state: TrainState) -> float:
        """Global maps per second of the training steps of this epoch (this attempt)."""
        steps = state.step - self._epoch_first_step
        return steps * self.global_batch / max(time.perf_counter() - self._epoch_start, 1e-9)

    def end_epoch(
        self,
        state: TrainState,
        train_loss: float,
        val_loss: float,
        samples_per_s: float,
        images: Mapping[str, np.ndarray],
    ) -> None:
        """Record a finished epoch (``state.epoch`` already counts it) in every output;
        ``images`` (H, W) in [0, 1] by TensorBoard tag."""
        lr = state.parts.lr()
        values = (state.epoch, state.step, train_loss, val_loss, lr, samples_per_s, state.elapsed())
        row = dict(zip(LOG_COLUMNS, values, strict=True))
        state.history.append(row)
        if not self.enabled:
            return
        self._write_csv(state.history)
        self._write_epoch_scalars(row)
        for tag, image in images.items():
            self.writer.add_image(tag, image[None], state.epoch)
        self.writer.flush()
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
            _duration(self._time_left(state)),
        )

    def _write_epoch_scalars(self, row: dict[str, float]) -> None:
        epoch = int(row["epoch"])
        self.writer.add_scalar("loss/train", row["train_loss"], epoch)
        self.writer.add_scalar("loss/val", row["val_loss"], epoch)
        self.writer.add_scalar("lr", row["lr"], epoch)
        self.writer.add_scalar("samples_per_s", row["samples_per_s"], epoch)

    def _write_csv(self, rows: list[dict[str, float]]) -> None:
        # Rewritten whole and atomically: a killed job leaves a valid table of its epochs.
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def gradient_norm(model: torch.nn.Module) -> float:
    """Euclidean norm of all parameter gradients (after DDP averaging and AMP unscaling)."""
    norms = [p.grad.detach().float().norm() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def prediction_image(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Grey image (H, W) in [0, 1]: a 2D histogram of predicted (up) against true (right).

    Scaled parameters live in [0, 1]; a good network puts the mass on the diagonal, which is
    drawn faintly for reference.
    """
    counts, _, _ = np.histogram2d(
        np.clip(predicted, 0, 1), np.clip(truth, 0, 1), bins=HISTOGRAM_BINS, range=[[0, 1]] * 2
    )
    image = np.log1p(counts)
    image /= max(image.max(), 1e-12)
    diagonal = np.eye(HISTOGRAM_BINS, dtype=bool)
    image[diagonal] = np.maximum(image[diagonal], 0.25)
    return np.flipud(image).astype(np.float32)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
