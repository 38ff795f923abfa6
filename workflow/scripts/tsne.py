"""Snakemake entry point: PCA + openTSNE map of one experiment's embeddings."""

from astroflow.cluster import tsne
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    p = snakemake.params
    tsne(
        snakemake.input[0],
        snakemake.output[0],
        pca_components=p.pca_components,
        perplexity=p.perplexity,
        seed=p.seed,
        n_jobs=snakemake.threads,
    )
