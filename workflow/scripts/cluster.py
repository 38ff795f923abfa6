"""Snakemake entry point: KMeans clusters and scores of one experiment's embeddings."""

from astroflow.cluster import cluster
from astroflow.runlog import log_to_file

with log_to_file(snakemake.log[0], job=snakemake):
    p = snakemake.params
    cluster(
        snakemake.input[0],
        snakemake.output[0],
        n_clusters=p.n_clusters,
        pca_components=p.pca_components,
        silhouette_sample=p.silhouette_sample,
        knn_neighbors=p.knn_neighbors,
        seed=p.seed,
        n_jobs=snakemake.threads,
        knn_param=p.knn_param,
    )
