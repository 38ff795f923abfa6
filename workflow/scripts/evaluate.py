"""Snakemake entry point: one evaluation of an experiment, computed by its model family."""

from astroflow.families import get_family
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    p = snakemake.params
    inputs = {
        name: [value] if isinstance(value, str) else list(value)
        for name, value in snakemake.input.items()
    }
    get_family(p.model).evaluate(
        snakemake.wildcards.evaluation,
        inputs,
        snakemake.output[0],
        settings=p.settings,
        config=snakemake.config,
        threads=snakemake.threads,
    )
