"""Snakemake entry point: split simulations and compute train-split field statistics."""

from pathlib import Path

from astroflow.maps.shards import compute_train_stats
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    p = snakemake.params
    compute_train_stats(
        Path(snakemake.input.params).parent,
        snakemake.wildcards.suite,
        p.set,
        p.fields,
        p.n_sims,
        p.splits,
        p.seed,
        p.log_floor,
        snakemake.output[0],
        map_size=p.map_size,
        floor_non_positive=p.floor_non_positive,
    )
