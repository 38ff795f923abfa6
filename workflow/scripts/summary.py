"""Snakemake entry point: the report's summary page (metrics, clusters, config, versions)."""

from astroflow.runlog import log_to_file
from astroflow.summary import write_summary

with log_to_file(snakemake.log[0]):
    experiments = snakemake.params.experiments
    write_summary(
        snakemake.params.config,
        dict(zip(experiments, snakemake.input.metrics, strict=True)),
        dict(zip(experiments, snakemake.input.clusters, strict=True)),
        snakemake.output[0],
    )
