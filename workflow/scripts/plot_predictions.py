"""Snakemake entry point: predicted vs true parameters with error bars."""

from astroflow.plots import plot_predictions
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0]):
    plot_predictions(snakemake.input[0], snakemake.output[0])
