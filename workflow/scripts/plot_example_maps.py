"""Snakemake entry point: example maps of every field from the first test shard."""

from astroflow.plots import plot_example_maps
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    plot_example_maps(snakemake.input.shard, snakemake.output[0], snakemake.params.fields)
