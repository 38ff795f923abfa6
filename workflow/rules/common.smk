# Configuration, derived tables and input functions. Imports no torch: every cluster job
# re-parses this file.
import os
import re

from astroflow.config import ConfigError, SPLITS, validate_config
from astroflow.data import cmd
from astroflow.data.splits import shard_map_indices
from astroflow.engine.options import RUNTIME_KEYS

try:
    validate_config(
        config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml")
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None

DATA = config["data"]
EXPERIMENTS = config["experiments"]
DATASET = f"{DATA['suite']}_{DATA['set']}"
RAW_DIR = f"data/raw/cmd/{DATASET}"
SHARD_DIR = f"data/shards/{DATASET}"
RAW_MAPS = {
    field: f"{RAW_DIR}/{cmd.map_filename(field, DATA['suite'], DATA['set'])}"
    for field in DATA["fields"]
}
RAW_PARAMS = f"{RAW_DIR}/{cmd.params_filename(DATA['suite'], DATA['set'])}"
RAW_FILES = [*RAW_MAPS.values(), RAW_PARAMS]

# Static shard counts from the config: no checkpoint, the DAG is known at parse time.
SHARD_COUNTS = {
    split: len(shards)
    for split, shards in shard_map_indices(
        DATA["n_sims"], DATA["splits"], config["seed"], DATA["maps_per_shard"]
    ).items()
}


wildcard_constraints:
    dataset=DATASET,
    split="|".join(SPLITS),
    shard=r"\d{3}",
    experiment="|".join(EXPERIMENTS),


def canonical(mapping):
    """Keys in sorted order, so reordering a YAML mapping does not look like a parameter change."""
    return {key: mapping[key] for key in sorted(mapping)}


def shard_files(split):
    """All shard paths of one split, e.g. data/shards/IllustrisTNG_LH/test/000.h5."""
    return [f"{SHARD_DIR}/{split}/{i:03d}.h5" for i in range(SHARD_COUNTS[split])]


def experiment_settings(wildcards):
    """The settings that define a trained model; a change to one of them retrains it.

    Resource requests (gpus, threads, mem_mb, runtime) and the other runtime keys (restart,
    checkpoint cadence, precision, loader workers, compile) are left out on purpose: moving a
    job to a bigger node or checkpointing more often must not invalidate its results.
    """
    settings = dict(EXPERIMENTS[wildcards.experiment])
    for key in RUNTIME_KEYS:
        settings.pop(key, None)
    settings["seed"] = config["seed"]
    return canonical(settings)


def experiment_threads(wildcards):
    return EXPERIMENTS[wildcards.experiment]["threads"]


def experiment_gpus(wildcards):
    return EXPERIMENTS[wildcards.experiment]["gpus"]


def experiment_mem_mb(wildcards, attempt):
    """Memory grows with each retry, so an out-of-memory kill is followed by a bigger request."""
    return EXPERIMENTS[wildcards.experiment]["mem_mb"] * attempt


def experiment_runtime(wildcards, attempt):
    """Minutes, growing with each retry so a time-limit kill is followed by a longer request."""
    return EXPERIMENTS[wildcards.experiment]["runtime"] * attempt


def experiment_products(experiment):
    base = f"results/{experiment}"
    return [
        f"{base}/metrics.json",
        f"{base}/clusters.json",
        f"{base}/figures/training_curves.png",
        f"{base}/figures/predictions.png",
        f"{base}/figures/tsne.png",
    ]


def all_products():
    products = [f"results/{DATASET}/figures/example_maps.png", "results/summary.html"]
    for experiment in EXPERIMENTS:
        products += experiment_products(experiment)
    return products
