"""Resume, periodic checkpoints and the stop on SIGTERM/SIGUSR1, around the training loop.

:class:`Checkpointer` is the loop's only contact with checkpoints: it restores a state at the
start (refusing a checkpoint of other settings unless the run may restart), saves when a step
or time interval has passed or an epoch ended, and after a stop signal saves at the next step
boundary and raises :class:`TrainingInterrupted`. All ranks take these decisions together
(a signal seen by one rank stops all of them at the same step); rank 0 writes.

SIGTERM and SIGUSR1 are what a scheduler sends before it kills a job. SLURM sends the signal
of ``--signal`` (the profile uses ``--signal=TERM@300``) to every process of the job step some
minutes before the time limit, and SIGTERM again on ``scancel`` and preemption, followed by
SIGKILL after a grace period. The training process only records the signal; the loop then
saves a checkpoint at the next step boundary and exits non-zero, so Snakemake's retry (or
SLURM's requeue) resumes from it. The other processes of a step must not die from the same
signal first: DataLoader workers ignore it (the main process stops them cleanly), and the
torchrun agent starts with both signals blocked, so it neither kills its workers on SIGTERM
nor dies on SIGUSR1; it notices the workers' exit instead (see :mod:`astroflow.engine.launch`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from types import FrameType
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

log = logging.getLogger("astroflow.train")


STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """Context that records SIGTERM/SIGUSR1 instead of dying from them.

    ``received`` is the name of the first stop signal that arrived (None until then). Handlers
    can be installed only in the main thread; elsewhere (a notebook's worker thread, say) the
    signals keep their previous meaning and a warning says so. Entering also unblocks both
    signals (see :func:`blocked_for_children`); the previous handlers are put back on exit.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.received: str | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> StopRequest:
        if not self.enabled:
            return self
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: SIGTERM/SIGUSR1 will not save a checkpoint")
            return self
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        unblock()  # a torchrun rank starts with them blocked; one pending now gets recorded
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # Only record: logging or I/O inside a signal handler can deadlock on a held lock.
        if self.received is None:
            self.received = signal.Signals(signum).name


def ignore_stop_signals(_worker_id: int | None = None) -> None:
    """Ignore SIGTERM/SIGUSR1 in this process (a DataLoader worker's ``worker_init_fn``).

    PyTorch's workers die from a SIGTERM that their parent did not send, and the main process
    then fails at its next batch; SLURM signals every process of the step, workers included.
    """
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def blocked_for_children() -> Iterator[None]:
    """Block SIGTERM/SIGUSR1 while child processes are started: they inherit the mask.

    Signals arriving meanwhile stay pending and reach this process when the block ends.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def unblock() -> None:
    """Undo an inherited block (first thing a torchrun worker does)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


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
