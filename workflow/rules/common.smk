# Configuration, derived tables and input functions. Imports no torch: every cluster job
# re-parses this file.
import os
import re

from astroflow.config import ConfigError, SPLITS, validate_config
from astroflow.maps import cmd
from astroflow.maps.splits import shard_map_indices
from astroflow.engine.options import RUNTIME_KEYS
from astroflow.tasks import DATASETS

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

# Cubes: the experiment's model says which data it reads (cnn2d maps, cnn3d cubes).
CUBES = config["cubes"]
CUBESET = CUBES["name"]
CUBE_DIR = f"data/cubes/{CUBESET}"
MAP_EXPERIMENTS = [
    e for e in EXPERIMENTS if DATASETS[EXPERIMENTS[e]["model"]] == "maps"
]
CUBE_EXPERIMENTS = [
    e for e in EXPERIMENTS if DATASETS[EXPERIMENTS[e]["model"]] == "cubes"
]
CUBE_EXAMPLES = [
    f"{CUBE_DIR}/examples/core_{i:03d}.fits" for i in range(CUBES["fits_examples"])
]
# Every *.fits file in the real-data folder is a target of every cube experiment.
REAL_DIR = CUBES["real_data"].rstrip("/")
REAL_CUBES = sorted(glob_wildcards(f"{REAL_DIR}/{{name,[^/]+}}.fits").name)


wildcard_constraints:
    dataset=DATASET,
    split="|".join(SPLITS),
    shard=r"\d{3}",
    experiment="|".join(EXPERIMENTS),
    cubeset=CUBESET,


def canonical(mapping):
    """Keys in sorted order, so reordering a YAML mapping does not look like a parameter change."""
    return {key: mapping[key] for key in sorted(mapping)}


def shard_files(split):
    """All shard paths of one split, e.g. data/shards/IllustrisTNG_LH/test/000.h5."""
    return [f"{SHARD_DIR}/{split}/{i:03d}.h5" for i in range(SHARD_COUNTS[split])]


def cube_shard_files(split):
    """All cube shard paths of one split, e.g. data/cubes/cores/test/000.h5."""
    return [f"{CUBE_DIR}/{split}/{i:03d}.h5" for i in range(CUBES["shards"][split])]


def experiment_shards(split):
    """Input function: the shards of ``split`` that the experiment's model reads."""

    def shards(wildcards):
        if wildcards.experiment in CUBE_EXPERIMENTS:
            return cube_shard_files(split)
        return shard_files(split)

    return shards


def experiment_settings(wildcards):
    """The settings that define a trained model; a change to one of them retrains it.

    Resource requests (gpus, threads, mem_mb, runtime) and the other runtime keys (restart,
    checkpoint cadence, precision, loader workers, compile) are left out on purpose: moving a
    job to a bigger node or checkpointing more often must not invalidate its results.
    """
    settings = dict(EXPERIMENTS[wildcards.experiment])
    for key in RUNTIME_KEYS:
        settings.pop(key, None)
    if wildcards.experiment in CUBE_EXPERIMENTS:
        settings.pop("params")  # they only describe the embeddings of a cnn3d
    settings["seed"] = config["seed"]
    return canonical(settings)


def experiment_threads(wildcards):
    return EXPERIMENTS[wildcards.experiment]["threads"]


def experiment_gpus(wildcards):
    return EXPERIMENTS[wildcards.experiment]["gpus"]


def inference_gpus(wildcards):
    """Inference and embeddings run in one process: one GPU at most, however many trained."""
    return min(EXPERIMENTS[wildcards.experiment]["gpus"], 1)


def experiment_mem_mb(wildcards, attempt):
    """Memory grows with each retry, so an out-of-memory kill is followed by a bigger request."""
    return EXPERIMENTS[wildcards.experiment]["mem_mb"] * attempt


def experiment_runtime(wildcards, attempt):
    """Minutes, growing with each retry so a time-limit kill is followed by a longer request."""
    return EXPERIMENTS[wildcards.experiment]["runtime"] * attempt


def experiment_params(wildcards):
    """Parameters the experiment predicts (cnn2d) or describes its embeddings by (cnn3d)."""
    return EXPERIMENTS[wildcards.experiment]["params"]


def knn_param(wildcards):
    """The parameter whose KNN regression on the embeddings scores them: the first one."""
    return EXPERIMENTS[wildcards.experiment]["params"][0]


def tsne_colours(wildcards):
    """The t-SNE map is coloured by the experiment's first two parameters."""
    return EXPERIMENTS[wildcards.experiment]["params"][:2]


def loss_label(wildcards):
    return "moment loss" if wildcards.experiment in MAP_EXPERIMENTS else "profile loss"


def experiment_products(experiment):
    base = f"results/{experiment}"
    products = [
        f"{base}/metrics.json",
        f"{base}/clusters.json",
        f"{base}/figures/training_curves.png",
        f"{base}/figures/tsne.png",
    ]
    if experiment in CUBE_EXPERIMENTS:
        products += [
            f"{base}/figures/profiles.png",
            f"{base}/figures/residual_maps.png",
        ]
        for name in REAL_CUBES:
            products += [
                f"{base}/real/{name}_density.fits",
                f"{base}/real/{name}_velocity.fits",
            ]
    else:
        products.append(f"{base}/figures/predictions.png")
    return products


def all_products():
    products = ["results/summary.html"]
    if MAP_EXPERIMENTS:
        products.append(f"results/{DATASET}/figures/example_maps.png")
    if CUBE_EXPERIMENTS:
        products += CUBE_EXAMPLES
        products += [
            f"results/{CUBESET}/figures/channel_maps.png",
            f"results/{CUBESET}/figures/moment_maps.png",
        ]
    for experiment in EXPERIMENTS:
        products += experiment_products(experiment)
    return products
