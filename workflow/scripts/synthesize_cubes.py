"""Snakemake entry point: synthesise the cores of one cube shard and write it."""

from astroflow.cubes.shards import write_cube_shard
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    p = snakemake.params
    write_cube_shard(
        p.core,
        snakemake.wildcards.split,
        int(snakemake.wildcards.shard),
        p.cores_per_shard,
        p.seed,
        snakemake.output[0],
    )
