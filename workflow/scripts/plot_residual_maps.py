"""Snakemake entry point: maps of the profile residuals of the network and the baseline."""

from astroflow.cubes.plots import plot_residual_maps
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0]):
    plot_residual_maps(snakemake.input[0], snakemake.output[0])
