"""Snakemake entry point: posterior mean and std for every test map, and the metrics."""

from astroflow.infer import predict
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    predict(
        snakemake.input.model,
        snakemake.input.shards,
        snakemake.output.predictions,
        snakemake.output.metrics,
        threads=snakemake.threads,
        settings=snakemake.params.settings,
    )
