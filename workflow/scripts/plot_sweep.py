"""Snakemake entry point: a sweep's metrics against the swept value, as a table and a figure."""

from astroflow.runlog import log_to_file
from astroflow.sweep import write_sweep

with log_to_file(snakemake.log[0], job=snakemake):
    write_sweep(
        snakemake.params.sweep,
        snakemake.params.family,
        list(snakemake.input),
        snakemake.output.table,
        snakemake.output.figure,
    )
