"""Snakemake entry point: PCA, t-SNE and clusters of the embeddings of every shard, in chunks."""

from pathlib import Path

from astroflow.embedding_analysis import analyse
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    p = snakemake.params
    analyse(
        snakemake.input,
        Path(snakemake.output.summary).parent,
        analysis=p.analysis,
        colour_by=p.colour_by,
        seed=p.seed,
        n_jobs=snakemake.threads,
    )
