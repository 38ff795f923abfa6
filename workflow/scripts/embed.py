"""Snakemake entry point: penultimate-layer embeddings of every test map."""

from astroflow.embed import embed
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    embed(
        snakemake.input.model,
        snakemake.input.shards,
        snakemake.output[0],
        threads=snakemake.threads,
        settings=snakemake.params.settings,
    )
