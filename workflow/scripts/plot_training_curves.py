"""Snakemake entry point: training and validation curves of one experiment."""

from astroflow.plots import plot_training_curves
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0]):
    plot_training_curves(
        snakemake.input[0], snakemake.output[0], loss_label=snakemake.params.loss_label
    )
