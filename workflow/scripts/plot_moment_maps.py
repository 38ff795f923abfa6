"""Snakemake entry point: moment 0 and 1 maps beside the true column density and velocity."""

from astroflow.cubes.plots import plot_moment_maps
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    plot_moment_maps(snakemake.input[0], snakemake.output[0])
