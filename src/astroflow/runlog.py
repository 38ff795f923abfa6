"""Send a workflow step's logging, warnings and tracebacks to its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from astroflow.resources import request_line

JOB_ENVIRONMENT = (
    "SLURM_JOB_ID",
    "SLURM_JOB_PARTITION",
    "PBS_JOBID",
    "PBS_QUEUE",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
)
"""Scheduler and device variables worth a line at the top of every step's log."""


@contextlib.contextmanager
def log_to_file(
    path: str | os.PathLike[str], level: int = logging.INFO, job: Any = None
) -> Iterator[logging.Logger]:
    """Route the ``astroflow`` logger, warnings and stderr to ``path`` for the duration of a step.

    A cluster job's stdout is easy to lose; the log file declared by the rule is where a user
    looks first, so the traceback of a failure is written there before it propagates. With
    ``job`` (a script's ``snakemake`` object) the log also records what the job was given
    (threads, memory, runtime, GPUs), which the report's resources page compares with use.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Emptied once, then appended to: a step's child processes (torchrun ranks) write to the
    # same file, and a handler that does not append would overwrite their lines.
    Path(path).write_text("")
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(level)
    logging.captureWarnings(True)
    logger = logging.getLogger("astroflow")
    logger.info("job context: %s", job_context())
    if job is not None:
        logger.info(request_line(job.rule, job.wildcards, job.threads, job.resources))
    with open(path, "a") as stream, contextlib.redirect_stderr(stream):
        try:
            yield logger
        except BaseException:
            logger.exception("step failed")
            raise
        finally:
            handler.flush()
            root.removeHandler(handler)
            root.setLevel(previous_level)
            handler.close()
            logging.captureWarnings(False)
            sys.stderr.flush()


def job_context() -> str:
    """Host, scheduler job and visible GPUs, e.g. ``host=node12 SLURM_JOB_PARTITION=gpu ...``.

    When a result looks wrong, the first question is where it ran and on what; the answer is
    then in the log instead of in a scheduler database that forgets old jobs.
    """
    items = [f"host={platform.node()}"]
    items += [f"{name}={os.environ[name]}" for name in JOB_ENVIRONMENT if name in os.environ]
    return " ".join(items)
