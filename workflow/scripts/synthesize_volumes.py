"""Snakemake entry point: synthesise the volume pairs of one shard and write it."""

from astroflow.runlog import log_to_file
from astroflow.volumes.shards import write_volume_shard

with log_to_file(snakemake.log[0]):
    p = snakemake.params
    write_volume_shard(
        p.settings,
        snakemake.wildcards.split,
        int(snakemake.wildcards.shard),
        p.volumes_per_shard,
        p.seed,
        snakemake.output[0],
    )
