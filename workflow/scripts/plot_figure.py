"""Snakemake entry point: one figure of an experiment, drawn by its model family."""

from astroflow.families import get_family
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    p = snakemake.params
    get_family(p.model).plot(
        snakemake.wildcards.figure, list(snakemake.input), snakemake.output[0], p.colour_by
    )
