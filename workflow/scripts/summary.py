"""Snakemake entry point: the report's summary page (metrics, clusters, config, versions)."""

from astroflow.runlog import log_to_file
from astroflow.summary import write_summary

with log_to_file(snakemake.log[0], job=snakemake):
    p = snakemake.params
    write_summary(
        p.config,
        dict(zip(p.predicting, snakemake.input.metrics, strict=True)),
        dict(zip(p.embedding, snakemake.input.clusters, strict=True)),
        snakemake.output[0],
    )
