"""SIGTERM and SIGUSR1: what a scheduler sends before it kills a job, turned into a checkpoint.

SLURM sends the signal of ``--signal`` (the profile uses ``--signal=TERM@300``) to every
process of the job step some minutes before the time limit, and SIGTERM again on ``scancel``
and preemption, followed by SIGKILL after a grace period. The training process only records
the signal; the loop then saves a checkpoint at the next step boundary and exits non-zero, so
Snakemake's retry (or SLURM's requeue) resumes from it.

The other processes of a step must not die from the same signal first: DataLoader workers
ignore it (the main process stops them cleanly), and the torchrun agent starts with both
signals blocked, so it neither kills its workers on SIGTERM nor dies on SIGUSR1; it notices
the workers' exit instead (see :mod:`astroflow.engine.launch`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger(__name__)

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
