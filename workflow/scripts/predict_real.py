"""Snakemake entry point: one real observation through an experiment's trained model."""

from astroflow.families import get_family
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    get_family(snakemake.params.model).predict_real(
        snakemake.input.model,
        snakemake.input.data,
        dict(snakemake.output.items()),
        config=snakemake.config,
        threads=snakemake.threads,
    )
