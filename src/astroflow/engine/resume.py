"""Resume, periodic checkpoints and the stop on SIGTERM/SIGUSR1, around the training loop.

:class:`Checkpointer` is the loop's only contact with checkpoints: it restores a state at the
start (refusing a checkpoint of other settings unless the run may restart), saves when a step
or time interval has passed or an epoch ended, and after a stop signal saves at the next step
boundary and raises :class:`TrainingInterrupted`. All ranks take these decisions together
(a signal seen by one rank stops all of them at the same step); rank 0 writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from astroflow.engine import rng
from astroflow.engine.checkpoint import (
    CheckpointMismatch,
    CheckpointStore,
    TrainState,
    check_resumable,
    differences,
)
from astroflow.engine.distributed import World
from astroflow.engine.options import RunOptions
from astroflow.engine.signals import StopRequest

log = logging.getLogger("astroflow.train")


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; running it again resumes."""


class Checkpointer:
    """Checkpoints of one run (everything is a no-op without ``options.checkpoint_dir``).

    ``fingerprint`` identifies the run (:func:`astroflow.engine.checkpoint.fingerprint`);
    ``seed`` reseeds the generators when a run resumes on another number of ranks.
    """

    def __init__(
        self,
        options: RunOptions,
        fingerprint: Mapping[str, Any],
        world: World,
        seed: int,
        steps_per_epoch: int,
    ) -> None:
        self.store = CheckpointStore(options.checkpoint_dir) if options.checkpoint_dir else None
        self.restart = options.restart
        self.every_steps = options.checkpoint_every_steps
        minutes = options.checkpoint_every_minutes
        self.every_s = None if minutes is None else 60.0 * minutes
        self.fingerprint = dict(fingerprint)
        self.world = world
        self.seed = seed
        self.steps_per_epoch = steps_per_epoch
        self.stop = StopRequest(enabled=self.store is not None)
        self.save_seconds: list[float] = []
        self._last_save = time.monotonic()

    def __enter__(self) -> Checkpointer:
        self.stop.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.__exit__(*exc)

    def describe(self) -> str:
        if self.store is None:
            return "no checkpoints"
        every = [f"{self.every_steps} steps"] if self.every_steps else []
        every += [f"{self.every_s / 60:g} min"] if self.every_s else []
        return f"checkpoints in {self.store.directory} every epoch" + "".join(
            f", every {e}" for e in every
        )

    def resume(self, state: TrainState) -> None:
        """Load the newest checkpoint into ``state``, if there is a resumable one."""
        if self.store is None:
            return
        found = self.store.latest()
        if found is None:
            log.info("no checkpoint in %s: training from the start", self.store.directory)
            return
        path, payload = found
        try:
            check_resumable(path, payload, self.fingerprint, self.store.directory)
        except CheckpointMismatch:
            if not self.restart:
                raise
            changes = "; ".join(differences(payload["fingerprint"], self.fingerprint))
            log.warning("restart: discarding %s of other settings (%s)", path, changes)
            self.world.barrier()  # every rank has read it before rank 0 deletes it
            if self.world.is_main:
                self.store.clear()
            self.world.barrier()
            return
        state.load_payload(payload)
        if payload["world_size"] == self.world.size:
            rng.restore(payload["rng"][self.world.rank])
        else:
            log.warning(
                "checkpoint written by %d processes, resuming with %d: random streams are "
                "reseeded, so this run will not be bitwise equal to an uninterrupted one",
                payload["world_size"],
                self.world.size,
            )
            rng.seed_everything(rng.derive_seed(self.seed, self.world.rank, state.step))
        log.info("resuming from %s: %d epochs and %d steps done", path, state.epoch, state.step)

    def after_step(self, state: TrainState) -> None:
        """Save when an interval has passed; save and stop when a stop signal arrived.

        The interval saves skip the last step of an epoch, whose state is saved after the
        validation anyway.
        """
        if self.store is None:
            return
        due = bool(self.every_steps) and state.step % self.every_steps == 0
        due = due or (
            self.every_s is not None and time.monotonic() - self._last_save >= self.every_s
        )
        due = due and state.step % self.steps_per_epoch != 0
        stop, due = self.world.agree(self.stop.received is not None, due)
        if stop or due:
            self.save(state)
        if stop:
            self._interrupt(state)

    def end_epoch(self, state: TrainState) -> None:
        """Save the state of a finished epoch; stop there if a signal arrived meanwhile."""
        if self.store is None:
            return
        self.save(state)
        (stop,) = self.world.agree(self.stop.received is not None)
        if stop:
            self._interrupt(state)

    def save(self, state: TrainState) -> None:
        """Write a checkpoint of ``state`` (collective: every rank contributes its RNG state)."""
        start = time.perf_counter()
        rng_states = self.world.gather_objects(rng.capture())
        if self.world.is_main:
            path = self.store.save(state.to_payload(self.fingerprint, rng_states))
            seconds = time.perf_counter() - start
            self.save_seconds.append(seconds)
            log.info("checkpoint of step %d written to %s in %.2f s", state.step, path, seconds)
        # Nobody moves on (or exits) before the file is complete: torchrun stops every rank
        # as soon as one exits.
        self.world.barrier()
        self._last_save = time.monotonic()

    def finish(self) -> None:
        """Remove the checkpoints of a completed run: its products supersede them."""
        if self.store is None:
            return
        self.world.barrier()
        if self.world.is_main:
            self.store.clear()

    def _interrupt(self, state: TrainState) -> None:
        signal_name = self.stop.received or "a stop signal (on another rank)"
        raise TrainingInterrupted(
            f"stopped by {signal_name} after step {state.step}; the checkpoint in "
            f"{self.store.directory} resumes the run when it is started again"
        )
