"""Snakemake entry point: channel maps of one synthetic core from the first test shard."""

from astroflow.cubes.plots import plot_channel_maps
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    plot_channel_maps(snakemake.input[0], snakemake.output[0])
