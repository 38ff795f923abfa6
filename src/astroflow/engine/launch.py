"""Start the ranks of a training job under torchrun, one per GPU, and pass signals on to them.

A job that asked for several GPUs starts ``torchrun --standalone`` with one process per GPU
(:func:`process_count`); on a machine without CUDA (a CPU node, a test cluster with fake GPUs)
the same number of processes train on the CPU over gloo, so the distributed path is the one
that was asked for everywhere. Each rank runs the entry module the caller names (the
training entry point, :mod:`astroflow.train`), which hands its request to :func:`rank_main`;
every rank appends to the rule's log file.

Signals: the torchrun agent is started with SIGTERM and SIGUSR1 blocked (inherited), so a
scheduler's warning signal neither makes it kill the ranks after its 30 s shutdown timeout
nor, for SIGUSR1, kills the agent outright; the ranks unblock both once their handlers are
installed, save a checkpoint and exit with :data:`EXIT_INTERRUPTED`, and the agent ends when
they do. A stop signal sent to this process alone is forwarded to the ranks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from astroflow.engine.resume import STOP_SIGNALS, TrainingInterrupted, blocked_for_children, unblock

log = logging.getLogger("astroflow.train")

EXIT_INTERRUPTED = 75
"""Exit status of a rank stopped by a signal after its checkpoint (EX_TEMPFAIL: try again)."""


def process_count(gpus: int) -> int:
    """Training processes for an experiment that asked for ``gpus`` GPUs.

    One per GPU; when CUDA shows fewer GPUs than asked for, one per visible GPU (with a
    warning); without CUDA, ``gpus`` CPU processes.
    """
    if gpus <= 1:
        return 1
    if torch.cuda.is_available():
        visible = torch.cuda.device_count()
        if visible < gpus:
            log.warning("%d GPUs requested but %d visible: training on %d", gpus, visible, visible)
            return max(visible, 1)
    return gpus


def run_ranks(
    entry_module: str,
    request: Mapping[str, Any],
    processes: int,
    threads: int | None,
    log_path: str | os.PathLike[str] | None = None,
) -> None:
    """Run ``python -m <entry_module> <request.json>`` as ``processes`` torchrun ranks.

    ``request`` is plain data for the ranks (their :func:`rank_main` reads it back);
    ``threads`` is the job's thread budget, shared evenly by the ranks. The ranks log to
    ``log_path`` (stderr if None); a failed or interrupted run raises after all ranks have
    exited.
    """
    threads = max(1, (threads or os.cpu_count() or 1) // processes)
    log.info("starting torchrun: %d processes with %d threads each", processes, threads)
    with tempfile.TemporaryDirectory(prefix="astroflow-train-") as tmp:
        request_path = Path(tmp) / "request.json"
        request_path.write_text(json.dumps({**request, "threads": threads}))
        command = [
            sys.executable,
            *("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"),
            *("-m", entry_module, str(request_path)),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        with _output(log_path) as output, _Forwarder() as forwarder:
            # Handlers first, then the block ends: a signal that came meanwhile is forwarded.
            with blocked_for_children():
                agent = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
                forwarder.agent_pid = agent.pid
            status = agent.wait()
    if status != 0:
        if forwarder.received:
            raise TrainingInterrupted(
                f"stopped by {forwarder.received[0]}: the ranks saved a checkpoint; running "
                "the job again resumes it"
            )
        raise RuntimeError(f"torchrun with {processes} processes exited with status {status}")


@contextlib.contextmanager
def _output(log_path: str | os.PathLike[str] | None) -> Iterator[Any]:
    if log_path is None:
        yield None
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as stream:
        yield stream


class _Forwarder:
    """While torchrun runs, pass the stop signals this process receives on to its ranks.

    ``received`` lists the names of the signals that came. The ranks are the agent's children
    (found in /proc, so forwarding works on Linux only; under SLURM every process of the step
    gets the signal directly anyway).
    """

    def __init__(self) -> None:
        self.agent_pid: int | None = None
        self.received: list[str] = []
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> _Forwarder:
        self._previous = {sig: signal.signal(sig, self._forward) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum).name)
        for pid in _children(self.agent_pid) if self.agent_pid else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc/<pid>/stat; empty without /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def rank_main(run: Callable[[dict[str, Any]], None], argv: Sequence[str]) -> int:
    """One torchrun rank: ``run`` the request written by :func:`run_ranks`.

    The request says where to log (``log_path``) and whether the run checkpoints
    (``checkpoint_dir``); the stop signals stay blocked until the training has its handlers in
    place (a signal meanwhile is kept pending, not fatal); without checkpoints they keep their
    default meaning. Returns the rank's exit status.
    """
    (request_path,) = argv
    request = json.loads(Path(request_path).read_text())
    if request.get("checkpoint_dir") is None:
        unblock()
    rank = int(os.environ.get("RANK", "0"))
    _log_to(request.get("log_path"), rank)
    try:
        run(request)
    except TrainingInterrupted as stop:
        if rank == 0:
            log.warning("%s", stop)
        return EXIT_INTERRUPTED
    except BaseException:
        log.exception("training failed")
        raise
    return 0


def _log_to(log_path: str | None, rank: int) -> None:
    """Rank 0 logs everything, the others warnings and errors; lines carry the rank."""
    handler = logging.FileHandler(log_path, mode="a") if log_path else logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s %(name)s [rank {rank}]: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    logging.captureWarnings(True)
