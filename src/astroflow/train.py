"""Train an experiment: the entry point of the workflow's train rule and of its torchrun ranks.

:func:`train_experiment` trains in this process through the engine
(:func:`astroflow.engine.loop.fit`) with the experiment's model family; :func:`train_job` does
the same with as many processes as the experiment asked GPUs for (torchrun ranks that run
:func:`main` of this module).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from astroflow.engine.launch import process_count, rank_main, run_ranks
from astroflow.engine.loop import fit
from astroflow.engine.options import RunOptions
from astroflow.families import get_family

Paths = Sequence[str | os.PathLike[str]]


def train_experiment(
    settings: Mapping[str, Any],
    train_paths: Paths,
    val_paths: Paths,
    out_model: str | os.PathLike[str],
    out_log: str | os.PathLike[str],
    tensorboard_dir: str | os.PathLike[str],
    options: RunOptions | None = None,
) -> dict[str, float]:
    """Train the experiment ``settings`` (its ``model`` names the family) in this process.

    See :func:`astroflow.engine.loop.fit` for the settings, the options and the summary
    returned.
    """
    if "model" not in settings:
        raise KeyError(f"experiment settings lack ['model'] (have {sorted(settings)})")
    family = get_family(settings["model"]).training()
    return fit(
        family, settings, train_paths, val_paths, out_model, out_log, tensorboard_dir, options
    )


def train_job(
    settings: Mapping[str, Any],
    train_paths: Paths,
    val_paths: Paths,
    out_model: str | os.PathLike[str],
    out_log: str | os.PathLike[str],
    tensorboard_dir: str | os.PathLike[str],
    options: RunOptions,
    *,
    gpus: int,
    log_path: str | os.PathLike[str] | None = None,
) -> None:
    """Train one experiment with one process per GPU asked for (one process for gpus <= 1).

    ``options.threads`` is the job's thread budget, shared evenly by the ranks, which log to
    ``log_path`` (stderr if None).
    """
    processes = process_count(gpus)
    if processes == 1:
        train_experiment(
            settings, train_paths, val_paths, out_model, out_log, tensorboard_dir, options
        )
        return
    request = {
        "settings": dict(settings),
        "train": [os.fspath(p) for p in train_paths],
        "val": [os.fspath(p) for p in val_paths],
        "out_model": os.fspath(out_model),
        "out_log": os.fspath(out_log),
        "tensorboard_dir": os.fspath(tensorboard_dir),
        "options": options.to_json(),
        "checkpoint_dir": options.to_json()["checkpoint_dir"],
        "log_path": None if log_path is None else os.fspath(log_path),
    }
    run_ranks(__name__, request, processes, options.threads, log_path)


def _train_request(request: dict[str, Any]) -> None:
    train_experiment(
        request["settings"],
        request["train"],
        request["val"],
        request["out_model"],
        request["out_log"],
        request["tensorboard_dir"],
        RunOptions(**{**request["options"], "threads": request["threads"]}),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """One torchrun rank of :func:`train_job`."""
    return rank_main(_train_request, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
