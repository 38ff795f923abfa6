"""Snakemake entry point: embeddings of the maps of some shards of one split."""

from astroflow.embed import embed
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    embed(
        snakemake.input.model,
        snakemake.input.shards,
        snakemake.output[0],
        threads=snakemake.threads,
        settings=snakemake.params.settings,
        split=snakemake.params.split,
    )
