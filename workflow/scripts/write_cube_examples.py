"""Snakemake entry point: the first cubes of the first test shard as FITS files with a WCS."""

from pathlib import Path

from astroflow.cubes.fits import write_shard_examples
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    write_shard_examples(
        snakemake.input[0], Path(snakemake.output[0]).parent, snakemake.params.n_examples
    )
