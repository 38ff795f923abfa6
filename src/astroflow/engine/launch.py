"""Start a training job: in this process for one device, under torchrun for several GPUs.

The workflow's train rule calls :func:`train_job` with the number of GPUs the experiment
asked for. One GPU (or none) trains in-process. Several start ``torchrun --standalone`` with
one process per GPU; on a machine without CUDA (a CPU node, a test cluster with fake GPUs)
the same number of processes train on the CPU over gloo, so the distributed path is the one
that was asked for everywhere. Each rank runs :func:`main` of this module, which reads the
request this process wrote and calls :func:`astroflow.train.train_experiment`; every rank
appends to the rule's log file.

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from astroflow.engine.options import RunOptions
from astroflow.engine.resume import TrainingInterrupted
from astroflow.engine.signals import STOP_SIGNALS, blocked_for_children, unblock

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


def train_job(
    settings: dict[str, Any],
    train_paths: Sequence[str | os.PathLike[str]],
    val_paths: Sequence[str | os.PathLike[str]],
    out_model: str | os.PathLike[str],
    out_log: str | os.PathLike[str],
    tensorboard_dir: str | os.PathLike[str],
    options: RunOptions,
    *,
    gpus: int,
    log_path: str | os.PathLike[str] | None = None,
) -> None:
    """Train one experiment with :func:`process_count` processes (see the module docstring).

    ``options.threads`` is the job's thread budget, shared evenly by the ranks. With several
    processes the ranks log to ``log_path`` (stderr if None); a failed or interrupted run
    raises after all ranks have exited.
    """
    from astroflow.train import train_experiment

    processes = process_count(gpus)
    if processes == 1:
        train_experiment(
            settings, train_paths, val_paths, out_model, out_log, tensorboard_dir, options
        )
        return
    threads = max(1, (options.threads or os.cpu_count() or 1) // processes)
    request = {
        "settings": settings,
        "train": [os.fspath(p) for p in train_paths],
        "val": [os.fspath(p) for p in val_paths],
        "out_model": os.fspath(out_model),
        "out_log": os.fspath(out_log),
        "tensorboard_dir": os.fspath(tensorboard_dir),
        "options": {**options.to_json(), "threads": threads},
        "log_path": None if log_path is None else os.fspath(log_path),
    }
    log.info("starting torchrun: %d processes with %d threads each", processes, threads)
    with tempfile.TemporaryDirectory(prefix="astroflow-train-") as tmp:
        request_path = Path(tmp) / "request.json"
        request_path.write_text(json.dumps(request))
        command = [
            sys.executable,
            *("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"),
            *("-m", "astroflow.engine.launch", str(request_path)),
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


def main(argv: Sequence[str] | None = None) -> int:
    """One torchrun rank: train the request written by :func:`train_job`.

    The stop signals stay blocked until the training has its handlers in place (a signal
    meanwhile is kept pending, not fatal); without checkpoints they keep their default meaning.
    """
    from astroflow.train import train_experiment

    (request_path,) = sys.argv[1:] if argv is None else argv
    request = json.loads(Path(request_path).read_text())
    if request["options"]["checkpoint_dir"] is None:
        unblock()
    rank = int(os.environ.get("RANK", "0"))
    _log_to(request["log_path"], rank)
    try:
        train_experiment(
            request["settings"],
            request["train"],
            request["val"],
            request["out_model"],
            request["out_log"],
            request["tensorboard_dir"],
            RunOptions(**request["options"]),
        )
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


if __name__ == "__main__":
    sys.exit(main())
