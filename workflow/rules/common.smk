# Configuration, derived tables and input functions. Imports no torch: every cluster job
# re-parses this file.
import os
import re

from astroflow.config import ConfigError, SPLITS, validate_config
from astroflow.cubes.folder import real_cubes
from astroflow.maps import cmd
from astroflow.maps.splits import shard_map_indices
from astroflow.engine.options import RUNTIME_KEYS
from astroflow.families import get_family

try:
    validate_config(
        config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml")
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None

DATA = config["data"]
EXPERIMENTS = config["experiments"]
SET = DATA["set"]
DATASET = f"{DATA['suite']}_{SET}"
SHARD_DIR = f"data/shards/{DATASET}"


def raw_maps(suite):
    """Map files of one suite in the CMD layout (``suite`` may be the ``{suite}`` wildcard)."""
    return [
        f"data/raw/cmd/{suite}_{SET}/{cmd.map_filename(field, suite, SET)}"
        for field in DATA["fields"]
    ]


def raw_params(suite):
    return f"data/raw/cmd/{suite}_{SET}/{cmd.params_filename(suite, SET)}"


def raw_files(suite):
    return [*raw_maps(suite), raw_params(suite)]


# Static shard counts from the config: no checkpoint, the DAG is known at parse time.
SHARD_COUNTS = {
    split: len(shards)
    for split, shards in shard_map_indices(
        DATA["n_sims"], DATA["splits"], config["seed"], DATA["maps_per_shard"]
    ).items()
}

# Cubes: read by the experiments whose family reads cubes.
CUBES = config["cubes"]
CUBESET = CUBES["name"]
CUBE_DIR = f"data/cubes/{CUBESET}"
CUBE_EXAMPLES = [
    f"{CUBE_DIR}/examples/core_{i:03d}.fits" for i in range(CUBES["fits_examples"])
]
# Every FITS file (*.fits, *.FITS, *.fit) in the real-data folder is a target of every
# family with real outputs.
try:
    REAL_FILES = real_cubes(CUBES["real_data"])
except ValueError as error:
    raise WorkflowError(str(error)) from None
REAL_CUBES = list(REAL_FILES)
REAL_NAME = "|".join(re.escape(name) for name in REAL_CUBES) or "(?!)"
SWEEPS = config["sweeps"]

# Volumes: paired low/high-resolution fields, read by the experiments whose family reads them.
VOLUMES = config["volumes"]
VOLUMESET = VOLUMES["name"]
VOLUME_DIR = f"data/volumes/{VOLUMESET}"


def real_cube(wildcards):
    """Input function: the FITS file of the real cube ``{name}``."""
    return REAL_FILES[wildcards.name]


def family_of(experiment):
    """The model family (astroflow.families) of an experiment."""
    return get_family(EXPERIMENTS[experiment]["model"])


def experiment_suites(experiment):
    """CMD suites whose map shards an experiment reads (none for cube families)."""
    family = family_of(experiment)
    if family.data != "maps":
        return []
    return family.suites(EXPERIMENTS[experiment], config)


SUITES = list(
    dict.fromkeys(
        [DATA["suite"], *(s for e in EXPERIMENTS for s in experiment_suites(e))]
    )
)
"""Every suite with raw files and shards: data.suite first, then those experiments add."""


def reading(kind):
    """Experiments whose family reads ``kind`` data (maps or cubes)."""
    return [e for e in EXPERIMENTS if family_of(e).data == kind]


EVALUATIONS = sorted(
    {e.name for experiment in EXPERIMENTS for e in family_of(experiment).evaluations}
)
"""Names of every family evaluation in the config (results/<experiment>/<name>.json)."""
SAMPLES = sorted(
    {name for e in EXPERIMENTS for name in family_of(e).samples(EXPERIMENTS[e])}
)
"""Names of every sample set in the config (results/<experiment>/samples/<name>.h5)."""


wildcard_constraints:
    suite="|".join(SUITES),
    split="|".join(SPLITS),
    shard=r"\d{3}",
    experiment="|".join(EXPERIMENTS),
    sweep="|".join(SWEEPS) or "(?!)",
    cubeset=CUBESET,
    volumeset=VOLUMESET,
    figure="[a-z0-9_]+",
    evaluation="|".join(EVALUATIONS) or "(?!)",
    sample="|".join(SAMPLES) or "(?!)",


def canonical(mapping):
    """Keys in sorted order, so reordering a YAML mapping does not look like a parameter change."""
    return {key: mapping[key] for key in sorted(mapping)}


def shard_files(split, suite=DATA["suite"]):
    """All shard paths of one split, e.g. data/shards/IllustrisTNG_LH/test/000.h5."""
    return [
        f"data/shards/{suite}_{SET}/{split}/{i:03d}.h5"
        for i in range(SHARD_COUNTS[split])
    ]


def cube_shard_files(split):
    """All cube shard paths of one split, e.g. data/cubes/cores/test/000.h5."""
    return [f"{CUBE_DIR}/{split}/{i:03d}.h5" for i in range(CUBES["shards"][split])]


def volume_shard_files(split):
    """All volume shard paths of one split, e.g. data/volumes/fields/test/000.h5."""
    return [f"{VOLUME_DIR}/{split}/{i:03d}.h5" for i in range(VOLUMES["shards"][split])]


def volume_synthesis():
    """The synthetic volume settings (astroflow.volumes.synthetic.VolumeConfig)."""
    return canonical(
        {
            k: v
            for k, v in VOLUMES.items()
            if k not in ("name", "shards", "volumes_per_shard")
        }
    )


def shards_of(experiment, split):
    """The shards of ``split`` that an experiment's family reads: map shards of each of its
    suites, in order, cube shards or volume shards."""
    kind = family_of(experiment).data
    if kind == "cubes":
        return cube_shard_files(split)
    if kind == "volumes":
        return volume_shard_files(split)
    suites = experiment_suites(experiment)
    return [path for suite in suites for path in shard_files(split, suite)]


def experiment_shards(split):
    """Input function: the shards of ``split`` the experiment reads."""
    return lambda wildcards: shards_of(wildcards.experiment, split)


def experiment_shard(wildcards):
    """Input function: shard number ``{shard}`` of ``{split}`` among those the experiment
    reads (numbered across its suites, in the order of :func:`shards_of`), as a list of
    one, like the shards of the other embedding rule."""
    shards = shards_of(wildcards.experiment, wildcards.split)
    index = int(wildcards.shard)
    if index >= len(shards):
        raise WorkflowError(
            f"{wildcards.experiment} reads {len(shards)} {wildcards.split} shards, "
            f"not shard {wildcards.shard}"
        )
    return [shards[index]]


def split_embeddings(experiment, split):
    """The per-shard embedding files of one split, in the order of its shards."""
    return [
        f"results/{experiment}/embeddings/{split}/{i:03d}.h5"
        for i in range(len(shards_of(experiment, split)))
    ]


def embedding_shards(wildcards):
    """Input function: one embedding file per shard of every split of analysis.splits."""
    return [
        path
        for split in config["analysis"]["splits"]
        for path in split_embeddings(wildcards.experiment, split)
    ]


def experiment_settings(wildcards):
    """The settings that define a trained model; a change to one of them retrains it.

    Resource requests (gpus, threads, mem_mb, runtime), the other runtime keys (restart,
    checkpoint cadence, precision, loader workers, compile) and settings that only describe
    products (a family's runtime_settings) are left out on purpose: moving a job to a bigger
    node or checkpointing more often must not invalidate its results.
    """
    skip = {*RUNTIME_KEYS, *family_of(wildcards.experiment).runtime_settings}
    settings = {
        k: v for k, v in EXPERIMENTS[wildcards.experiment].items() if k not in skip
    }
    settings["seed"] = config["seed"]
    return canonical(settings)


def product_settings(wildcards):
    """An experiment's settings but its resource and runtime keys: what its products (an
    evaluation, say) depend on, descriptive settings included."""
    experiment = EXPERIMENTS[wildcards.experiment]
    return canonical({k: v for k, v in experiment.items() if k not in RUNTIME_KEYS})


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


def descriptive_params(wildcards):
    """Parameters that describe the experiment's embeddings; the first is the KNN target."""
    return family_of(wildcards.experiment).descriptive_params(
        EXPERIMENTS[wildcards.experiment]
    )


def knn_param(wildcards):
    """The parameter whose KNN regression on the embeddings scores them: the first one."""
    return descriptive_params(wildcards)[0]


def figure_inputs(wildcards):
    """The experiment's products that one of its family's figures is drawn from, then the
    shards of the splits it reads."""
    figure = family_of(wildcards.experiment).figure(wildcards.figure)
    products = [f"results/{wildcards.experiment}/{name}" for name in figure.inputs]
    shards = [
        p for split in figure.splits for p in shards_of(wildcards.experiment, split)
    ]
    return products + shards


def evaluation_inputs(wildcards):
    """Named inputs of a family evaluation: its own products (``model.pt`` as ``model``),
    the shards of each split it reads (by split name), the per-shard embeddings of those
    splits where the analysis makes them (``<split>_embeddings``), and other experiments'
    products.
    """
    family = family_of(wildcards.experiment)
    evaluation = family.evaluation(wildcards.evaluation)
    inputs = {
        name.split(".")[0]: f"results/{wildcards.experiment}/{name}"
        for name in evaluation.inputs
    }
    analysed = config["analysis"]["splits"] if wildcards.experiment in EMBEDDING else []
    for split in evaluation.splits:
        inputs[split] = shards_of(wildcards.experiment, split)
        if (
            split in analysed
        ):  # embedded anyway: the family may read them, not recompute
            inputs[f"{split}_embeddings"] = split_embeddings(
                wildcards.experiment, split
            )
    inputs.update(
        family.evaluation_references(
            evaluation.name, EXPERIMENTS[wildcards.experiment], config
        )
    )
    return inputs


def figure_colours(wildcards):
    """Descriptive parameters of a figure coloured by them, none for the others: a change of
    the parameters redraws only the figures that show them."""
    if family_of(wildcards.experiment).figure(wildcards.figure).coloured:
        return descriptive_params(wildcards)
    return []


def figure_category(wildcards):
    return family_of(wildcards.experiment).figure(wildcards.figure).category


def figure_caption(wildcards):
    figure = family_of(wildcards.experiment).figure(wildcards.figure)
    return figure.caption.replace("{experiment}", wildcards.experiment)


def sweep_metrics(wildcards):
    """metrics.json of every experiment of a sweep, in the order of its values."""
    return [f"results/{e}/metrics.json" for e in SWEEPS[wildcards.sweep]["experiments"]]


def sweep_family(wildcards):
    return family_of(SWEEPS[wildcards.sweep]["experiments"][0])


SWEEP_MEMBERS = {e for sweep in SWEEPS.values() for e in sweep["experiments"][:-1]}
"""Experiments of a sweep but its last: they make what the sweep compares."""
PREDICTING = [e for e in EXPERIMENTS if family_of(e).predicts]
"""Experiments with metrics.json, in config order."""
EMBEDDING = [e for e in EXPERIMENTS if family_of(e).embeds and e not in SWEEP_MEMBERS]
"""Experiments with clusters.json in the summary, in config order."""


def experiment_products(experiment):
    context = {"real_cubes": REAL_CUBES, "sweep_member": experiment in SWEEP_MEMBERS}
    products = family_of(experiment).products(
        experiment, EXPERIMENTS[experiment], context
    )
    if config["analysis"]["splits"] and experiment in EMBEDDING:
        products.append(f"results/{experiment}/analysis/analysis.json")
    return products


def all_products(include_resources=True):
    """Every target of a run; the resources page comes last, built from the others."""
    products = ["results/summary.html"]
    if include_resources:
        products.append("results/resources.html")
    if reading("maps"):
        products.append(f"results/{DATASET}/figures/example_maps.png")
    if reading("cubes"):
        products += CUBE_EXAMPLES
        products += [
            f"results/{CUBESET}/figures/channel_maps.png",
            f"results/{CUBESET}/figures/moment_maps.png",
        ]
    for experiment in EXPERIMENTS:
        products += experiment_products(experiment)
    for sweep, members in SWEEPS.items():
        if family_of(members["experiments"][0]).sweep_metrics:
            products.append(f"results/{sweep}/figures/sweep.png")
    return products
