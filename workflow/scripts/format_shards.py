"""Snakemake entry point: write one HDF5 shard of one split."""

from pathlib import Path

from astroflow.maps.shards import write_shard
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    p = snakemake.params
    write_shard(
        Path(snakemake.input.params).parent,
        snakemake.wildcards.suite,
        p.set,
        snakemake.input.stats,
        snakemake.wildcards.split,
        int(snakemake.wildcards.shard),
        p.maps_per_shard,
        snakemake.output[0],
    )
