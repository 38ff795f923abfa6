"""Snakemake entry point: true, predicted and baseline profiles of a few columns."""

from astroflow.cubes.plots import plot_profiles
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0]):
    plot_profiles(snakemake.input[0], snakemake.output[0])
