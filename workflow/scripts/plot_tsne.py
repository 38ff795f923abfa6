"""Snakemake entry point: t-SNE map coloured by the experiment's first parameters and cluster."""

from astroflow.plots import plot_tsne
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0]):
    plot_tsne(
        snakemake.input.tsne,
        snakemake.input.clusters,
        snakemake.output[0],
        colour_by=snakemake.params.colour_by,
    )
